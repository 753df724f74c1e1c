"""The thin shell every stage runs in: logging, clean errors, and interrupts that clean up."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from digitflow.core.errors import DigitflowError

DEBUG_ENV_VAR = "DIGITFLOW_DEBUG"


def debug_requested(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> bool:
    """``--verbose`` on the command line or ``DIGITFLOW_DEBUG=1``: show tracebacks for bug reports."""
    argv = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    return "--verbose" in argv or environ.get(DEBUG_ENV_VAR, "").strip().lower() not in {"", "0", "false", "no"}


def _interrupt(signum: int, _frame: object) -> NoReturn:
    # Turn SIGTERM (sent by DVC, CI runners and `kill`) into the same path as Ctrl-C, so `with` blocks
    # remove temporary outputs and MLflow marks the run failed.
    raise KeyboardInterrupt(f"received signal {signum}")


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ``DigitflowError`` prints its message alone and exits with status 1.

    With ``--verbose`` or ``DIGITFLOW_DEBUG=1`` the traceback (with the library error that caused the
    message) is printed first, for bug reports.
    """
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except DigitflowError as exc:
        if debug_requested():
            traceback.print_exc()
        print(f"[{name}] error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"[{name}] interrupted; no output was written", file=sys.stderr)
        raise SystemExit(130) from None
    except BrokenPipeError:
        # Whoever read the output stopped (`digitflow server status | head -1`): end quietly, as shell tools
        # do, with stdout pointed at /dev/null so that Python's own flush at exit does not fail again
        # (Python's documented way, "Note on SIGPIPE" in the signal module).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None

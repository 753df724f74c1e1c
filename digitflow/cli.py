"""The thin shell every stage runs in: logging, clean errors, and interrupts that clean up."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

from digitflow.errors import DigitflowError


def _interrupt(signum: int, _frame: object) -> NoReturn:
    # Turn SIGTERM (sent by DVC, CI runners and `kill`) into the same path as Ctrl-C, so `with` blocks
    # remove temporary outputs and MLflow marks the run failed.
    raise KeyboardInterrupt(f"received signal {signum}")


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a ``DigitflowError`` prints its message alone and exits with status 1."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s", stream=sys.stderr)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
    except DigitflowError as exc:
        print(f"[{name}] error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"[{name}] interrupted; no output was written", file=sys.stderr)
        raise SystemExit(130) from None

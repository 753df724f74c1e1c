"""In the server's forked child: become the stage process the command would have been, run the stage
module as ``__main__`` exactly as ``python -m`` does, and end as Python ends.

What a cold ``python -m stages.X`` gets from its parent or its start-up and the child must take over
from the command: standard streams (the descriptors, and line buffering when stdout is a terminal),
working folder, environment, umask, signal dispositions and mask, ``sys.argv``, ``sys.path`` and
``sys.executable``; a fresh ``__main__``; no module of the project (the server's own are dropped, so
every project module is imported from the command's working folder as it is now); fresh seeds for
Python's and NumPy's global generators (forked children would otherwise share them); the temporary
folder read again from the environment.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import random
import runpy
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import types
import weakref
from typing import Any, NoReturn

from digitflow.core.warm.wire import Reader, WireError, send

TRACE_ENV = "DIGITFLOW_SERVER_TRACE"
PR_SET_PDEATHSIG = 1
PROJECT = {"digitflow", "stages"}
# Interrupted Python exits by SIGINT (since 3.8), as the shell expects of a program stopped by Ctrl-C.
INTERRUPTED = -1


def _signals(ignored: list[int], blocked: list[int]) -> None:
    signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signum in ignored or signum in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these two
                signal.signal(signum, signal.SIG_IGN)
            elif signum == signal.SIGINT:
                signal.signal(signum, signal.default_int_handler)
            else:
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _streams(fds: list[int]) -> None:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    # The server's stream objects now write to the command's descriptors; Python line-buffers stdout
    # when it is a terminal (stderr always is).
    if sys.stdout is not None and not sys.stdout.write_through:
        sys.stdout.reconfigure(line_buffering=os.isatty(1))


def _fresh_project() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in PROJECT]:
        del sys.modules[name]
    importlib.invalidate_caches()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = sys.modules["builtins"]
    sys.modules["__main__"] = main


def _fresh_state() -> None:
    # Finalizers of the server's objects (temporary folders, PyTorch's operator libraries) are the
    # server's to run, not each child's at its exit; the child's own objects get theirs as usual.
    for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
        finalizer.atexit = False
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    tempfile.tempdir = None


def prepare(request: dict[str, Any], fds: list[int]) -> None:
    """Everything but running the stage; an error here means the stage has not started."""
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    _signals(request["ignored_signals"], request["blocked_signals"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(request.get("import_env", {}))
    sys.argv[:] = request["argv"]
    sys.path[:] = request["path"]
    sys.executable = request["executable"]
    _fresh_project()
    _fresh_state()
    _streams(fds)


def exit_code(exc: SystemExit) -> int:
    """What Python makes of ``SystemExit``: None is 0, an integer itself, anything else is printed and 1."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    with contextlib.suppress(Exception):
        print(exc.code, file=sys.stderr)
    return 1


def _as_cold(exc: BaseException) -> BaseException:
    """``exc`` with the traceback a cold ``python -m`` prints: from runpy's frames on, without ours."""
    if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
        exc.__traceback__ = exc.__traceback__.tb_next
    return exc


def run_main(module: str) -> int:
    """Run ``module`` as ``python -m module`` runs it; the exit code Python would exit with."""
    try:
        runpy._run_module_as_main(module)  # type: ignore[attr-defined]  # what `python -m` calls
    except SystemExit as exc:
        return exit_code(exc)
    except KeyboardInterrupt as exc:
        traceback.print_exception(_as_cold(exc))
        return INTERRUPTED
    except BaseException as exc:
        sys.excepthook(type(exc), exc, _as_cold(exc).__traceback__)
        return 1
    return 0


def finish(code: int) -> NoReturn:
    """End as Python's own shutdown does: wait for non-daemon threads, run the exit handlers, flush
    the streams (a failed flush of stdout exits 120)."""
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            code = 120 if code == 0 else code
    if code == INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        os.kill(os.getpid(), signal.SIGINT)
        code = 128 + signal.SIGINT
    os._exit(code & 0xFF)


def _die_with(server: int) -> None:
    """Ask the kernel to kill this child if the server dies (``PR_SET_PDEATHSIG``): a killed server's
    commands see their connection close, and their stages must not go on writing meanwhile."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != server:  # it died before the request above
        os._exit(1)


def _close_all_but(keep: set[int]) -> None:
    """Close the server's descriptors (its socket, lock, log, other stages' connections): a cold stage
    has none of them, and a stage that outlives the server must not hold its lock."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


def become_stage(link: socket.socket, fds: list[int], request: dict[str, Any], server: int) -> NoReturn:
    """In the child: take over the command's process state, tell the server it is ready (or why it
    cannot be, so the command runs the stage cold), and run the stage once the command says go; exit
    with its status."""
    try:
        _die_with(server)
        _close_all_but({0, 1, 2, link.fileno(), *fds})
        prepare(request, fds)
        send(link, {"ready": True})
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            send(link, {"refused": f"the server's child could not take over the command: {exc!r}"})
        os._exit(1)
    try:
        go = Reader(link).frame()
    except (OSError, WireError):
        os._exit(0)
    if go.get("go") is not True:
        os._exit(0)
    link.close()
    preloaded, started = set(sys.modules), time.perf_counter()
    code = run_main(request["module"])
    trace(request["module"], preloaded, time.perf_counter() - started)
    finish(code)


def trace(module: str, preloaded: set[str], seconds: float) -> None:
    """With ``DIGITFLOW_SERVER_TRACE=FILE`` in the stage's environment, append what the stage took and
    the libraries it imported that the server had not (benchmarks/warm_bench.py reports them)."""
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    imported = sorted(name for name in set(sys.modules) - preloaded if name.split(".")[0] not in PROJECT)
    with contextlib.suppress(OSError), open(path, "a") as out:
        out.write(json.dumps({"module": module, "seconds": round(seconds, 3), "imported": imported}) + "\n")

"""The stage command's side: hand the stage to a warm server, or return so that it runs cold.

``stages/__init__.py`` calls ``run_warm_or_return`` first thing, before any stage module or heavy library
is imported. For ``python -m stages.<name>`` (exactly: no interpreter options) with the server on, it
connects to the server of this environment's key and sends its argv, working folder, environment,
umask, signal state and descriptors 0, 1, 2; once the server's child has started the stage, the command
only forwards the signals it receives and exits as the child did (the same code, or killed by the same
signal). If there is no server it starts one in the background, for the next stages, and returns; if
the server is gone, refuses or answers wrongly, it says so in one line and returns. It never fails a
stage: every problem before the stage has started in the server means the stage runs cold, here.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from digitflow.core.warm.identity import (
    PROTOCOL,
    SWITCH_ENV,
    ServerFiles,
    UnsafeFolder,
    enabled,
    identity,
    key_of,
    load_time_variables,
    private_dir,
    server_dir,
)
from digitflow.core.warm.wire import Reader, WireError, send

HANDSHAKE_SECONDS = 20.0
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# The folder that holds the `digitflow` package: where the server is started from.
PACKAGE_ROOT = Path(__file__).resolve().parents[3]


class Cold(Exception):
    """The stage runs cold, here; the message (if any) is the one line the user sees about it."""


def say(message: str) -> None:
    print(f"[digitflow] {message}", file=sys.stderr, flush=True)


def stage_module(orig_argv: list[str]) -> str | None:
    """``stages.train_torch`` when this process is ``python -m stages.train_torch [ARGS]``, else None
    (interpreter options such as ``-X importtime`` ask for this very process: it runs cold)."""
    if len(orig_argv) >= 3 and orig_argv[1] == "-m" and orig_argv[2].startswith("stages."):
        return orig_argv[2]
    return None


def run_warm_or_return() -> None:
    """Run this stage in a warm server and exit with its status, or return to run it cold."""
    module = stage_module(getattr(sys, "orig_argv", []))
    if module is None or not enabled(os.environ):
        return
    try:
        sock, reader, child = hand_over(module)
    except Cold as exc:
        if str(exc):
            say(str(exc))
        return
    except Exception as exc:  # never fail a stage because of the server
        say(f"the warm stage server could not be used ({exc!r}); running this stage cold")
        return
    exit_like(wait_for(sock, reader, child))


def request_for(module: str, key: str) -> dict[str, Any]:
    umask = os.umask(0o077)
    os.umask(umask)
    ignored = [int(s) for s in signal.valid_signals() if _ignored(s)]
    return {
        "op": "run",
        "protocol": PROTOCOL,
        "key": key,
        "module": module,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": sys.path,
        "executable": sys.executable,
        "umask": umask,
        "ignored_signals": ignored,
        "blocked_signals": [int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])],
    }


def _ignored(signum: int) -> bool:
    try:
        return signal.getsignal(signum) == signal.SIG_IGN and signum not in (signal.SIGPIPE, signal.SIGXFSZ)
    except (OSError, ValueError):
        return False


def hand_over(module: str) -> tuple[socket.socket, Reader, int]:
    """Connect and send the request; the connection, its reader and the child's pid once the stage has
    started in the server. Raises ``Cold`` (with the line to print, or none) otherwise."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise Cold()  # Python itself says what is wrong, as it would have
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            raise Cold() from None  # a closed standard stream: nothing to hand over
    try:
        folder = private_dir(server_dir(os.environ))
    except (UnsafeFolder, OSError) as exc:
        raise Cold(f"no warm stage server: {exc}; running this stage cold") from None
    key = key_of(identity(os.environ))
    files = ServerFiles(folder, key)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDSHAKE_SECONDS)
    try:
        sock.connect(str(files.socket))
    except FileNotFoundError:
        sock.close()
        if start_server(files):
            raise Cold(
                f"starting a warm stage server for the next stages ({SWITCH_ENV}=0 turns it off; "
                "`digitflow server status` shows it)"
            ) from None
        raise Cold() from None  # one is starting: this stage runs cold, quietly
    except ConnectionRefusedError:
        sock.close()
        started = start_server(files, stale=files.socket)
        raise Cold(
            "the warm stage server is gone; running this stage cold"
            + ("; a new server is starting for the next stages" if started else "")
        ) from None
    try:
        send(sock, request_for(module, key), fds=[0, 1, 2])
        reader = Reader(sock)
        reply = reader.frame()
    except (OSError, WireError) as exc:
        sock.close()
        raise Cold(f"the warm stage server did not answer ({exc}); running this stage cold") from None
    if "refused" in reply:
        sock.close()
        raise Cold(f"the warm stage server refused this stage ({reply['refused']}); running it cold")
    if not isinstance(reply.get("started"), int):
        sock.close()
        raise Cold(f"the warm stage server answered {reply!r}; running this stage cold")
    try:
        send(sock, {"go": True})  # from here on the stage is the server's: never cold as well
    except OSError as exc:
        sock.close()
        raise Cold(f"the warm stage server went away ({exc}); running this stage cold") from None
    sock.settimeout(None)
    return sock, reader, reply["started"]


def start_server(files: ServerFiles, stale: Path | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Start a server for ``files.key`` (this process's environment, or ``environ``: its key's) in the
    background unless one holds the key's lock (it is starting); whether this call started one."""
    try:
        fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a server of this key is starting (or stopping)
    finally:
        os.close(fd)
    if stale is not None:
        stale.unlink(missing_ok=True)
    import subprocess

    from digitflow.core.processes import isolated_env

    environ = os.environ if environ is None else environ
    subprocess.Popen(
        [sys.executable, "-m", "digitflow.core.warm.server", str(files.folder), files.key],
        cwd=PACKAGE_ROOT,
        # None of this stage's tracking credentials or DVC run variables, but every variable of its key
        # (MLflow's logging settings are read at import): the server checks it was started for that key.
        env=isolated_env(environ, **load_time_variables(environ)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command, its DVC run and a Ctrl-C in the terminal
    )
    return True


def wait_for(sock: socket.socket, reader: Reader, child: int) -> int:
    """Forward signals to the stage's child until it exits; its wait status."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            send(sock, {"signal": signum})

    def stop(signum: int, _frame: object) -> None:  # Ctrl-Z: stop the child, then this command
        forward(signal.SIGSTOP, None)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)

    def resume(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTSTP, stop)
        forward(signal.SIGCONT, None)

    for signum in FORWARDED:
        if not _ignored(signum):
            signal.signal(signum, forward)
    if not _ignored(signal.SIGTSTP):
        signal.signal(signal.SIGTSTP, stop)
        signal.signal(signal.SIGCONT, resume)
    try:
        while True:
            message = reader.frame()
            if "exit" in message:
                return int(message["exit"])
    except (OSError, WireError, ValueError):
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
        say(f"lost the warm stage server while the stage ran; its process {child} was stopped")
        return 1 << 8


def exit_like(status: int) -> NoReturn:
    """Exit as the child did: with its code, or killed by the same signal."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)

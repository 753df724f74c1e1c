"""The stack's servers as processes: each started in its own process group with a PID file, waited for
until it answers, and stopped with every worker it started.

A PID file records the process's start time and command line beside its PID, and both are compared before
the PID is trusted or signalled: after a reboot or a crash the number may belong to someone else's process
(group), which ``down`` must leave alone and which must not stop ``up`` from starting the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from digitflow.core.io import write_text
from digitflow.core.processes import group_members, process_alive, process_identity
from digitflow.team.config import StackError


def read_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that very process is still alive (same start time and command line),
    else None: a stale file, or one whose PID now names another process, is removed."""
    if not pid_file.exists():
        return None
    try:
        record = json.loads(pid_file.read_text())
        pid = int(record["pid"])
        recorded = {"start_time": int(record["start_time"]), "cmdline": list(record["cmdline"])}
    except (ValueError, KeyError, TypeError):  # damaged, or an older plain-number file: not to be trusted
        pid_file.unlink(missing_ok=True)
        return None
    if process_alive(pid) and process_identity(pid) == recorded:
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def start_process(command: list[str], env: dict[str, str], log_file: Path, pid_file: Path) -> int:
    """Start a service in its own process group (so it and its workers stop together); record its PID."""
    # The log is the owner's only, like the state folder it is in: a server may log what it was sent.
    with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    write_text(pid_file, json.dumps({"pid": process.pid, **_settled_identity(process.pid)}) + "\n")
    return process.pid


def _settled_identity(pid: int, timeout: float = 5.0) -> dict[str, object]:
    """The new process's identity once its command line is in place: for a moment after ``Popen`` returns,
    ``/proc/<pid>/cmdline`` can still read empty while the kernel finishes the exec."""
    deadline = time.monotonic() + timeout
    while True:
        identity = process_identity(pid)
        if identity is None or identity["cmdline"] or time.monotonic() > deadline:
            return identity or {"start_time": -1, "cmdline": []}
        time.sleep(0.01)


def stop_process(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process group of the PID in ``pid_file``, wait for all of it, SIGKILL what is left."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_members(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.2)
    if group_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while group_members(pid):
            _reap(pid)
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    # A service started by this same Python process stays a zombie until it is waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(ready: Callable[[], bool], pid_file: Path, log_file: Path, what: str, timeout: float) -> None:
    """Poll ``ready()`` until it is true; fail with the log's tail if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if read_pid(pid_file) is None:
            raise StackError(f"{what} exited while starting; the end of {log_file}:\n{tail(log_file)}")
        time.sleep(0.5)
    raise StackError(f"{what} did not answer within {timeout:.0f} s; the end of {log_file}:\n{tail(log_file)}")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

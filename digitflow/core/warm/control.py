"""``digitflow server status|start|stop``: see, pre-start and stop this user's warm stage servers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitflow.core.determinism import pin_cpu_kernels
from digitflow.core.errors import DigitflowError
from digitflow.core.processes import process_alive
from digitflow.core.warm.client import start_server
from digitflow.core.warm.identity import (
    SWITCH_ENV,
    ServerFiles,
    UnsafeFolder,
    enabled,
    identity,
    key_of,
    private_dir,
    server_dir,
)
from digitflow.core.warm.wire import Reader, WireError, send

ASK_SECONDS = 5.0


@dataclass
class Found:
    """A socket in the servers' folder, and what its server said (None: nobody answered)."""

    files: ServerFiles
    status: dict[str, Any] | None


def ask(path: Path, message: dict[str, Any]) -> dict[str, Any] | None:
    """Send ``message`` to the server at ``path``; its answer, or None if nobody answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ASK_SECONDS)
        try:
            sock.connect(str(path))
            send(sock, message)
            return Reader(sock).frame()
        except (OSError, WireError):
            return None


def folder_of(environ: Mapping[str, str]) -> Path:
    try:
        return private_dir(server_dir(environ))
    except (UnsafeFolder, OSError) as exc:
        raise DigitflowError(f"no warm stage server can be used: {exc}") from None


def servers(folder: Path) -> list[Found]:
    sockets = sorted(folder.glob("*.sock"))
    return [Found(ServerFiles(folder, path.stem), ask(path, {"op": "status"})) for path in sockets]


def starting(folder: Path) -> dict[str, int]:
    """Key -> pid of each server that holds its key's lock but has no socket yet (still importing)."""
    found = {}
    for lock in sorted(folder.glob("*.lock")):
        if lock.with_suffix(".sock").exists():
            continue
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: its server is alive
            with contextlib.suppress(ValueError):
                found[lock.stem] = int(lock.read_text() or 0)
        finally:
            os.close(fd)
    return {key: pid for key, pid in found.items() if pid > 0}


def environment_key(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The environment a stage command started from here would have (the CPU pins applied) and its key."""
    env = dict(environ)
    pin_cpu_kernels(env)
    return env, key_of(identity(env))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def describe(found: Found, current_key: str) -> list[str]:
    status = found.status
    if status is None:
        return [f"{found.files.socket}: nobody answers (the server is gone; the next stage replaces it)"]
    python = status["python"]
    threads = {k: v for k, v in status["variables"].items() if k.endswith(("_NUM_THREADS", "CBWR"))}
    lines = [
        f"pid {status['pid']}: up {_duration(time.time() - status['started'])}, {status['served']} stage(s) "
        f"served, {status['running']} running; stops after {_duration(status['idle_seconds'])} without a stage",
        f"  python {python[1].split()[0]} ({python[2]}), {len(status['preloaded'])} modules preloaded"
        + (f", {' '.join(f'{k}={v}' for k, v in threads.items())}" if threads else ""),
    ]
    if status["key"] == current_key:
        lines.append("  serves stage commands started from this shell's environment")
    return lines


def status_report(environ: Mapping[str, str]) -> str:
    folder = folder_of(environ)
    found, loading = servers(folder), starting(folder)
    _env, key = environment_key(environ)
    head = f"warm stage servers in {folder}:" if found or loading else f"no warm stage server is running ({folder})"
    lines = [head]
    for item in found:
        lines += describe(item, key)
    for loading_key, pid in loading.items():
        mine = " (for this shell's environment)" if loading_key == key else ""
        lines.append(f"pid {pid}: starting, importing the libraries{mine}")
    if not enabled(environ):
        lines.append(f"warm stage servers are off here ({SWITCH_ENV}=0, or not Linux): stages run cold")
    elif key not in loading and not any(item.status and item.status["key"] == key for item in found):
        lines.append("the next stage command starts one for this environment (or `digitflow server start`)")
    return "\n".join(lines)


def start(environ: Mapping[str, str], timeout: float = 300.0) -> str:
    """Start the server a stage command from this environment would use, and wait until it answers."""
    if not enabled(environ):
        raise DigitflowError(f"warm stage servers are off here ({SWITCH_ENV}=0, or not Linux)")
    env, key = environment_key(environ)
    files = ServerFiles(folder_of(environ), key)
    status = ask(files.socket, {"op": "status"})
    if status is not None:
        return f"a warm stage server is already running for this environment (pid {status['pid']})"
    start_server(files, stale=files.socket if files.socket.exists() else None, environ=env)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status = ask(files.socket, {"op": "status"})
        if status is not None:
            return f"warm stage server ready (pid {status['pid']}) in {time.monotonic() - started:.1f} s"
        if key not in starting(files.folder) and time.monotonic() - started > 10:
            break  # no server holds the key's lock: it stopped (or was stopped) before it was ready
        time.sleep(0.2)
    log = files.log.read_text().splitlines()[-3:] if files.log.exists() else []
    raise DigitflowError(f"the warm stage server did not start; its log ({files.log}) ends:\n" + "\n".join(log))


def stop(environ: Mapping[str, str], timeout: float = 30.0) -> str:
    """Stop every server in this user's folder, those still starting too; stages they are running
    finish first, on their own."""
    folder = folder_of(environ)
    pids = []
    for found in servers(folder):
        if found.status is None:
            found.files.socket.unlink(missing_ok=True)  # its server is gone
            continue
        ask(found.files.socket, {"op": "stop"})
        pids.append(found.status["pid"])
    loading = starting(folder)  # after the stops above: a stopping server has no socket but its lock
    for pid in (pid for pid in loading.values() if pid not in pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # before its handler is installed, SIGTERM ends it at once
        pids.append(pid)
    deadline = time.monotonic() + timeout
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if not pids:
        return f"no warm stage server was running ({folder})"
    plural = "s" if len(pids) > 1 else ""
    return f"stopped the warm stage server{plural} (pid {', '.join(map(str, pids))})"

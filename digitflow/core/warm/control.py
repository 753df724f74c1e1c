"""``digitflow server status|start|stop``: see, pre-start and stop this user's warm stage servers."""

from __future__ import annotations

import contextlib
import os
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
    return [
        Found(ServerFiles(folder, path.stem), ask(path, {"op": "status"})) for path in sorted(folder.glob("*.sock"))
    ]


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
        f"  python {python[1].split()[0]} ({python[0]}), {len(status['preloaded'])} libraries preloaded"
        + (f", {' '.join(f'{k}={v}' for k, v in threads.items())}" if threads else ""),
    ]
    if status["key"] == current_key:
        lines.append("  serves stage commands started from this shell's environment")
    return lines


def status_report(environ: Mapping[str, str]) -> str:
    folder = folder_of(environ)
    found = servers(folder)
    _env, key = environment_key(environ)
    head = f"warm stage servers in {folder}:" if found else f"no warm stage server is running ({folder})"
    lines = [head]
    for item in found:
        lines += describe(item, key)
    if not enabled(environ):
        lines.append(f"warm stage servers are off here ({SWITCH_ENV}=0, or not Linux): stages run cold")
    elif not any(item.status and item.status["key"] == key for item in found):
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
        time.sleep(0.2)
    raise DigitflowError(f"the warm stage server did not start within {timeout:.0f} s; see {files.log}")


def stop(environ: Mapping[str, str], timeout: float = 30.0) -> str:
    """Stop every server in this user's folder; stages they are running finish first on their own."""
    folder = folder_of(environ)
    stopped = []
    for found in servers(folder):
        if found.status is None:
            found.files.socket.unlink(missing_ok=True)
            continue
        pid = found.status["pid"]
        ask(found.files.socket, {"op": "stop"})
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        stopped.append(pid)
    if not stopped:
        return f"no warm stage server was running ({folder})"
    return (
        "stopped the warm stage server" + ("s" if len(stopped) > 1 else "") + f" (pid {', '.join(map(str, stopped))})"
    )

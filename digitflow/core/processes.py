"""Processes the project starts or watches: is one still alive, and what environment a child gets.

A child that must choose its own MLflow store or DVC context (a test's pipeline, a benchmark's, a
server of the team stack) must not inherit the caller's: ``mlflow.set_tracking_uri`` writes
``MLFLOW_TRACKING_URI`` into ``os.environ``, DVC exports ``DVC_*`` to its stages, and a teammate's
``AWS_*`` keys belong to their DVC client, not to a server. ``isolated_env`` drops them all, in one list.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

# Variables of a client's context: its tracking server and credentials, DVC's per-run variables, S3 keys,
# and pytest's own (which make a child believe it runs under pytest).
CONTEXT_PREFIXES = ("MLFLOW_", "DVC_", "AWS_", "PYTEST_")
# Every tool of the stack stays off the network.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}


def isolated_env(environ: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """``environ`` (default: this process's) without the caller's MLflow, DVC, AWS and pytest settings,
    with telemetry off, plus ``extra``."""
    environ = os.environ if environ is None else environ
    env = {key: value for key, value in environ.items() if not key.startswith(CONTEXT_PREFIXES)}
    env.update(NO_TELEMETRY)
    env.update(extra)
    return env


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from its third field on (the command name, in parentheses, may hold spaces),
    or None without procfs or the process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    """The state letter in ``/proc/<pid>/stat`` (``Z`` for a zombie), or None without procfs."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def process_identity(pid: int) -> dict[str, object] | None:
    """What tells process ``pid`` from a later one that reuses its number: its start time (clock ticks
    after boot, ``/proc/<pid>/stat`` field 22) and its command line; None if there is no such process."""
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return {"start_time": int(fields[19]), "cmdline": [arg.decode(errors="replace") for arg in argv if arg]}


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (zombies left out): a service and every worker it started,
    a command and the processes it ran."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            with contextlib.suppress(IndexError, ValueError):
                if fields and int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) != "Z"

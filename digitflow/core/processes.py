"""Processes the project starts or watches: is one still alive, and what environment a child gets.

A child that must choose its own MLflow store or DVC context (a test's pipeline, a benchmark's, a
server of the team stack) must not inherit the caller's: ``mlflow.set_tracking_uri`` writes
``MLFLOW_TRACKING_URI`` into ``os.environ``, DVC exports ``DVC_*`` to its stages, and a teammate's
``AWS_*`` keys belong to their DVC client, not to a server. ``isolated_env`` drops them all, in one list.
"""

from __future__ import annotations

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


def _proc_state(pid: int) -> str | None:
    """The state letter in ``/proc/<pid>/stat`` (``Z`` for a zombie), or None without procfs."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


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

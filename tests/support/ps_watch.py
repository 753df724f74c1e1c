"""What every user of the machine sees in ``ps``: the command line of every process, sampled from
``/proc/*/cmdline`` while a block runs, to show that no secret is ever one of them."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator

from digitflow.core.processes import group_members, process_identity


def _command_lines() -> set[str]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                found.add(handle.read().replace(b"\0", b" ").decode(errors="replace"))
    return found


@contextlib.contextmanager
def command_lines_seen(every: float = 0.02) -> Iterator[set[str]]:
    """Every distinct command line of any process, sampled every ``every`` seconds during the block."""
    seen: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.update(_command_lines())
            stop.wait(every)

    thread = threading.Thread(target=sample, name="ps-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen.update(_command_lines())


def leaked(seen: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """The secrets (at least 8 characters, so no accident matches) that appear in a command line seen."""
    return [secret for secret in secrets if len(secret) >= 8 and any(secret in line for line in seen)]


def group_runs(pgid: int, fragment: str) -> bool:
    """Whether a process of process group ``pgid`` has ``fragment`` in its command line."""
    identities = (process_identity(pid) for pid in group_members(pgid))
    return any(fragment in " ".join(found["cmdline"]) for found in identities if found)

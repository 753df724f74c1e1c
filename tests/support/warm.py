"""What the warm stage servers did, from their logs: which stages ran warm, where, and how they ended."""

from __future__ import annotations

import re
from pathlib import Path

# "<date> <time.ms> [<server pid>] stages.fetch in /path/to/project: child <pid>, exit 0, 0.42 s"
ENDED = re.compile(r"^(\S+ \S+) \[\d+\] (stages\.\w+) in (.+): child \d+, (exit \d+|signal \d+), ")


def served(folder: Path, under: Path) -> list[tuple[str, str]]:
    """(stage module, how it ended) of each stage the servers in ``folder`` ran in ``under`` or below,
    in the order they ended (stable: lines of one log keep their order)."""
    found = []
    for log in folder.glob("*.log"):
        for line in log.read_text().splitlines():
            match = ENDED.match(line)
            if match and Path(match[3]).is_relative_to(under):
                found.append((match[1], match[2], match[4]))
    return [(module, ended) for _when, module, ended in sorted(found, key=lambda entry: entry[0])]


def server_processes(folder: Path) -> list[int]:
    """Every process of the servers in ``folder``: the servers and their stage children (forked from
    a server, they keep its command line)."""
    wanted = f"digitflow.core.warm.server\0{folder}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found

"""Atomic file output and the small readers and writers the stages share.

Every output is written to a temporary name beside its destination and renamed into place only when
complete, so an interrupted or failed stage never leaves a half-written file for DVC or a user to find.
``mkstemp`` / ``mkdtemp`` create those temporaries private (0600 / 0700); before the rename they get the
permissions an ordinary ``open`` / ``mkdir`` would have given (0666 / 0777 less the umask), so other
users of a shared machine can read reports and models as they would any other file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def publish_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open`` (0666) or ``mkdir`` (0777) would, less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path to write; move it onto ``destination`` only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish_mode(tmp)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(destination: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces ``destination`` only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    try:
        yield tmp
        publish_mode(tmp, directory=True)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def save_array(path: Path, array: np.ndarray) -> None:
    # np.save appends ".npy" to names without it, so hand it an open file instead of the temp name.
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def save_figure(figure: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")

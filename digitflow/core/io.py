"""Atomic file output and the small readers and writers the stages share.

Every output is written to a temporary name beside its destination and renamed into place only when
complete, so an interrupted or failed stage never leaves a half-written file for DVC or a user to find.
``mkstemp`` / ``mkdtemp`` create those temporaries private (0600 / 0700); before the rename they get the
permissions an ordinary ``open`` / ``mkdir`` would have given (0666 / 0777 less the umask), so other
users of a shared machine can read reports and models as they would any other file; ``write_private``
keeps a secret's file 0600 instead. Files and their folders are ``fsync``ed before and after the rename,
so a power cut leaves the old content or the new, never an empty or half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _umask() -> int:
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def publish_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open`` (0666) or ``mkdir`` (0777) would, less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data and entries to disk (a folder's entries are its renames)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


@contextlib.contextmanager
def atomic_path(destination: Path, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; move it onto ``destination`` only if the block succeeds.

    ``private`` keeps the file readable by its owner only (0600, as ``mkstemp`` made it). The rename
    replaces ``destination`` itself, never what a symbolic link there points to.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not private:
            publish_mode(tmp)
        _fsync(tmp)
        os.replace(tmp, destination)
        _fsync(destination.parent)
    finally:
        tmp.unlink(missing_ok=True)


# Called after each step of ``atomic_dir``'s replacement ("aside", "in"); tests interrupt it there.
_step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _step_hook is not None:
        _step_hook(name)


def _aside_copies(destination: Path) -> list[Path]:
    return sorted(destination.parent.glob(f".{destination.name}.*.old"))


def recover_dir(destination: Path) -> None:
    """Put back a folder that ``atomic_dir`` had moved aside when its process was killed before the new
    one was renamed in (a SIGKILL or a power cut between the two renames); remove older leftovers."""
    destination = Path(destination)
    aside = _aside_copies(destination)
    if aside and not destination.exists():
        os.rename(aside.pop(), destination)
        _fsync(destination.parent)
    for leftover in aside:
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(destination: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; it replaces ``destination`` only if the block succeeds.

    The old folder is renamed aside, the new one renamed in, then the old one deleted: at every moment
    one of them is there (an exception or a signal between the renames puts the old one back; a process
    killed outright leaves it aside, where the next ``atomic_dir`` or ``recover_dir`` finds it). Files and
    folders are fsynced first, so a power cut keeps the old content or the new.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(destination)
    tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    aside: Path | None = None
    try:
        yield tmp
        publish_mode(tmp, directory=True)
        _fsync_tree(tmp)
        if destination.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".old", dir=destination.parent))
            os.rename(destination, aside)  # onto the empty folder just made: an atomic replacement
            _step("aside")
        os.rename(tmp, destination)
        _fsync(destination.parent)
        _step("in")
    except BaseException:
        if aside is not None and not destination.exists():
            os.rename(aside, destination)
            aside = None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_private(path: Path, text: str) -> None:
    """Write a file that holds a secret: atomically, readable by its owner only (0600), replacing a
    symbolic link at ``path`` rather than writing where it points."""
    with atomic_path(path, private=True) as tmp:
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
        write_npz(handle, arrays)


ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez``'s format (``np.load`` reads it) in bytes that depend on the arrays alone. NumPy streams
    each member with ``force_zip64``, whose headers differ between Python patch releases (3.11.2 and 3.11.7
    write other bytes for the same arrays), so a ``dvc.lock`` made on one would not match a run on another.
    Here each member is serialised first, then stored whole (zip64 only past 2 GiB), dated ``ZIP_TIME``."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.create_system, info.external_attr = 3, 0o644 << 16  # as written on Unix, on every system
            archive.writestr(info, member.getbuffer())


def save_figure(figure: Any, path: Path, tight: bool = True) -> None:
    """Save a matplotlib figure as PNG atomically; ``tight`` trims it to what is drawn (matplotlib draws it
    twice for that: a figure laid out to fit exactly is saved faster with ``tight=False``)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight" if tight else None)

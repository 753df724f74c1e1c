"""Reading a stage's inputs (what earlier stages wrote): a missing or damaged file becomes one message
with its repair.

A stage's inputs are DVC outputs, so the repair is always one of two DVC commands: ``dvc checkout``
restores the recorded version from the cache, and ``dvc repro -f -s STAGE`` rebuilds it when the cache
does not hold it. The stage that writes a path is looked up in ``dvc.yaml`` itself, so the advice
cannot drift from the pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from digitflow.core.dvc_files import producing_stage
from digitflow.core.errors import DigitflowError, InputError

T = TypeVar("T")


def restore_hint(path: Path) -> str:
    """The commands that bring ``path`` back: from DVC's cache (or git, for uncached metrics), or rebuilt."""
    found = producing_stage(path)
    if found is None:
        return f"restore it (`git checkout -- {path}`) or run the whole pipeline again (`dvc repro`)"
    stage, cached = found
    restore = f"dvc checkout --force {stage}" if cached else f"git checkout -- {path}"
    return f"restore it with `{restore}`, or rebuild it with `dvc repro -f -s {stage}`"


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any failure to read ``path`` inside the block into an ``InputError`` naming file and repair.

    Keep the block to the read itself: everything that fails inside it is blamed on the file. The
    original exception stays chained, so ``DIGITFLOW_DEBUG=1`` shows its traceback.
    """
    try:
        yield
    except DigitflowError:
        raise
    except FileNotFoundError as exc:
        missing = exc.filename or path
        raise InputError(f"{missing} is missing; {restore_hint(Path(missing))}") from exc
    except Exception as exc:  # every library reports a damaged file with its own exception type
        # The library's first sentence only: the rest is often advice that does not apply here
        # (NumPy suggests `allow_pickle=True` for a damaged .npy file).
        detail = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise InputError(f"{path} is damaged or not what this stage expects ({reason}); {restore_hint(path)}") from exc


def read(path: Path, loader: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``loader(path, *args, **kwargs)``, with a missing or damaged file reported as by ``reading``."""
    with reading(path):
        return loader(path, *args, **kwargs)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read now (a lazy ``NpzFile`` would fail later, outside ``reading``)."""
    with reading(path), np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}

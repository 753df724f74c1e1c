"""A folder of labelled pictures: one subfolder per class, its name the class's name (the layout of
torchvision's ``ImageFolder`` and Keras' ``image_dataset_from_directory``), read file by file.

    data/images/
      circle/  001.png  scan-2.jpg  ...
      square/  a.png  photos/b.jpeg  ...     (files in deeper folders belong to their top folder's class)

Classes are sorted by name, so label i is the i-th name, as ``ImageFolder`` numbers them. Names starting
with a dot (``.DS_Store``, ``.ipynb_checkpoints``) are ignored, as ``ls`` does, and so are the files
Windows leaves in picture folders (``Thumbs.db``, ``desktop.ini``); files at the top level belong to no
class and are listed as left out. Every other file must be a PNG or JPEG image (by its
content, not its name): ``image_files.open_image`` is the one place a file is opened, and one that fails is listed
with the reason. Each picture is described by what it is (size, mode, format) and by a hash of its
decoded pixels, upright and in RGBA: the same picture saved again (another PNG compression, metadata,
grey stored as RGB) has the same hash, so duplicates are found whatever the file bytes; a JPEG saved
again is not the same pixels and is not a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitflow.core.errors import DataError
from digitflow.data.image_files import ImageFileError, open_image

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MIN_CLASSES = 2
# What file managers write into picture folders by themselves: never the user's pictures, never an error.
SYSTEM_FILES = ("thumbs.db", "desktop.ini")


def pixel_digest(image: Image.Image) -> str:
    """SHA-256 of the picture's decoded pixels, upright (EXIF) and in RGBA (16-bit and float pictures in
    their own mode), with its size: equal for the same picture however the file stores it."""
    from PIL import ImageOps

    upright = ImageOps.exif_transpose(image)
    wide = upright.mode.startswith("I") or upright.mode == "F"
    pixels = np.asarray(upright).tobytes() if wide else upright.convert("RGBA").tobytes()
    return hashlib.sha256(f"{upright.mode if wide else 'RGBA'} {upright.size}".encode() + pixels).hexdigest()


@dataclass(frozen=True)
class Listing:
    """What a folder holds: the classes (sorted), each image file with its class, and what was left out."""

    class_names: tuple[str, ...]
    files: list[tuple[str, Path]]  # (class name, path), sorted by class then path
    outside_classes: list[Path] = field(default_factory=list)  # files at the top level


def _visible(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in SYSTEM_FILES


def _files_under(folder: Path) -> Iterator[Path]:
    """Every visible file under ``folder``, in any depth, following links as ``ImageFolder`` does."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        yield from (Path(root) / name for name in sorted(files) if _visible(name))


def require_folder(folder: Path) -> Path:
    """``folder``, refused unless it is a folder (checked by the validate stage too: DVC hashes the fetch
    stage's dependency, this folder, before fetch could say what is wrong)."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(
            f"data.folder = {folder} {what}: point data.folder (params.yaml) at a folder holding one subfolder of "
            "PNG or JPEG images per class (docs/own_images.md)"
        )
    return folder


def list_folder(folder: Path) -> Listing:
    """The classes and files of ``folder``; a folder that cannot make a dataset is refused, saying why."""
    folder = require_folder(folder)
    entries = sorted(entry for entry in folder.iterdir() if _visible(entry.name))
    class_dirs = [entry for entry in entries if entry.is_dir()]
    files = [(entry.name, path) for entry in class_dirs for path in _files_under(entry)]
    empty = [entry.name for entry in class_dirs if not any(name == entry.name for name, _ in files)]
    if empty:
        raise DataError(
            f"{folder}: these class folders hold no files: {', '.join(empty)}. Add images to them, or remove them"
        )
    if len(class_dirs) < MIN_CLASSES:
        found = f"one class folder ({class_dirs[0].name})" if class_dirs else "no class folder"
        raise DataError(
            f"{folder} has {found}; a classifier needs at least {MIN_CLASSES}: put each class's images in a "
            "subfolder named after the class"
        )
    outside = [entry for entry in entries if not entry.is_dir()]
    return Listing(tuple(entry.name for entry in class_dirs), files, outside)


@dataclass(frozen=True)
class ImageRecord:
    """One picture of the folder, as read: where, which class, what it is, and its pixels' hash."""

    path: str  # relative to the folder, with forward slashes
    class_name: str
    width: int
    height: int
    mode: str
    format: str
    pixels_sha256: str
    blank: bool = False  # the converted image is all background: the recipe found no ink
    problems: str = ""  # what the recipe found odd (no ink, ink on every border), "; "-separated


@dataclass
class FolderImages:
    """A folder read and converted: the images (n, height, width), labels, and a record per image."""

    class_names: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    records: list[ImageRecord]
    unreadable: list[tuple[str, str]]  # (path, reason) of files left out (data.skip_unreadable)
    outside_classes: list[str]

    def records_table(self) -> list[dict[str, Any]]:
        return [asdict(record) for record in self.records]


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def read_folder(
    folder: Path,
    convert: Callable[[Image.Image], tuple[np.ndarray, list[str]]],
    skip_unreadable: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FolderImages:
    """Read every picture of ``folder`` once: describe it, hash it and ``convert`` it (the folder recipe,
    which returns the image and its problems). Files that cannot be read are all listed in one message,
    and refused unless ``skip_unreadable``; ``progress(done, total)`` is called as files are read."""
    folder = Path(folder)
    listing = list_folder(folder)
    label_of = {name: index for index, name in enumerate(listing.class_names)}
    images, labels, records, unreadable = [], [], [], []
    for done, (class_name, path) in enumerate(listing.files, start=1):
        relative = _relative(path, folder)
        try:
            picture = open_image(path)
        except ImageFileError as exc:
            unreadable.append((relative, exc.reason))
            continue
        finally:
            if progress is not None:
                progress(done, len(listing.files))
        pixels, problems = convert(picture)
        images.append(pixels)
        labels.append(label_of[class_name])
        records.append(
            ImageRecord(
                relative,
                class_name,
                picture.width,
                picture.height,
                picture.mode,
                picture.format or "",
                pixel_digest(picture),
                not pixels.any(),
                "; ".join(problems),
            )
        )
    if unreadable and not skip_unreadable:
        listed = "\n".join(f"  {path}: {reason}" for path, reason in unreadable)
        raise DataError(
            f"{len(unreadable)} of {len(listing.files)} files in {folder} are not readable PNG or JPEG images:\n"
            f"{listed}\nRemove or repair them, or set data.skip_unreadable: true to leave them out (they stay "
            "listed in the data check)"
        )
    missing = sorted(set(listing.class_names) - {record.class_name for record in records})
    if missing:
        raise DataError(f"no readable image is left in the class folders {', '.join(missing)} of {folder}")
    return FolderImages(
        listing.class_names,
        np.stack(images).astype(np.float32),
        np.asarray(labels, dtype=np.int64),
        records,
        unreadable,
        [_relative(path, folder) for path in listing.outside_classes],
    )

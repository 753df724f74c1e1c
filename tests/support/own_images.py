"""Folders of labelled pictures for the tests of ``data.dataset: folder``: the example folder (made by
``digitflow example-images``' own code) and copies of it with the flaws users' folders have planted in
them: unreadable files, a picture under two classes, pictures twice in a class, a class too small."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageOps

from digitflow.data.example_images import SHAPES, make_example_folder

CLASSES = list(SHAPES)


def example_folder(destination: Path, per_class: int = 12) -> Path:
    """The example folder's first ``per_class`` pictures of each class (the same pictures it ships)."""
    make_example_folder(destination, per_class)
    return destination


def pictures(folder: Path, class_name: str) -> list[Path]:
    return sorted(path for path in (folder / class_name).iterdir() if not path.name.startswith("."))


def plant_unreadable(folder: Path) -> dict[str, str]:
    """A text file and a truncated PNG in class folders (each with the reason the check must give), a
    README at the top (outside any class) and a hidden .DS_Store (ignored)."""
    (folder / "circle" / "notes.txt").write_text("measured on 3 May\n")
    whole = pictures(folder, "square")[0].read_bytes()
    (folder / "square" / "broken.png").write_bytes(whole[: len(whole) // 2])
    (folder / "README.txt").write_text("shapes drawn by the team\n")
    (folder / "cross" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return {"circle/notes.txt": "not a PNG or JPEG image", "square/broken.png": "damaged or truncated image"}


def plant_cross_class_duplicate(folder: Path) -> tuple[str, str]:
    """A circle filed again as a square, under another name; returns both relative paths."""
    original = pictures(folder, "circle")[3]
    copy = folder / "square" / "from-the-circles.png"
    shutil.copyfile(original, copy)
    return original.relative_to(folder).as_posix(), copy.relative_to(folder).as_posix()


def plant_small_class(folder: Path, name: str = "star", count: int = 3) -> None:
    """A class with ``count`` pictures of its own (mirrored triangles: new pixels, no duplicates)."""
    (folder / name).mkdir()
    for index, source in enumerate(pictures(folder, "triangle")[:count]):
        with Image.open(source) as picture:
            ImageOps.mirror(picture).save(folder / name / f"{name}-{index}.png")


def plant_duplicates(folder: Path, class_name: str = "cross", count: int = 8) -> dict[str, str]:
    """``count`` pictures of a class saved again in it under new names (re-encoded as PNG, grey stored as
    RGB: other bytes, the same pixels); returns copy -> original, relative paths."""
    twins = {}
    for index, original in enumerate(pictures(folder, class_name)[:count]):
        copy = folder / class_name / f"again-{index:03d}.png"
        with Image.open(original) as picture:
            picture.convert("RGB").save(copy, format="PNG", compress_level=1)
        twins[copy.relative_to(folder).as_posix()] = original.relative_to(folder).as_posix()
    return twins


def keep_only(folder: Path, class_name: str, count: int) -> None:
    """Leave the first ``count`` pictures of a class (an unbalanced folder)."""
    for path in pictures(folder, class_name)[count:]:
        path.unlink()

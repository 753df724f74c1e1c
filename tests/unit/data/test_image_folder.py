"""digitflow.data.image_folder: a folder with a subfolder per class is read as users make them (odd
files, hidden files, nested folders, damaged pictures), with one message for what cannot be a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitflow.core.errors import DataError
from digitflow.data.example_images import SHAPES, make_example_folder
from digitflow.data.image_files import open_image
from digitflow.data.image_folder import list_folder, pixel_digest, read_folder


def grey(seed: int, size: tuple[int, int] = (20, 14)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size[::-1], dtype=np.uint8), mode="L")


def make_folder(root: Path, layout: dict[str, int]) -> Path:
    """``layout``: class -> number of pictures, each its own random grey picture."""
    for number, (name, count) in enumerate(layout.items()):
        (root / name).mkdir(parents=True)
        for index in range(count):
            grey(number * 100 + index).save(root / name / f"{index}.png")
    return root


def first_pixel(picture: Image.Image) -> tuple[np.ndarray, list[str]]:
    """A stand-in recipe: a 1x1 image of the picture's first grey value."""
    return np.asarray(picture.convert("L"), dtype=np.float32)[:1, :1], []


def test_classes_are_the_sorted_subfolders_and_files_in_deeper_folders_belong_to_them(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", {"zebra": 2, "Ant": 1, "moth": 2})
    (folder / "moth" / "night").mkdir()
    grey(9).save(folder / "moth" / "night" / "late.png")
    (folder / "moth" / ".DS_Store").write_bytes(b"\x00")
    (folder / "moth" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")  # Windows' thumbnails: not a picture
    (folder / "zebra" / "desktop.ini").write_text("[.ShellClassInfo]")
    (folder / ".cache").mkdir()  # hidden: not a class
    (folder / "README.md").write_text("about these pictures")
    listing = list_folder(folder)
    assert listing.class_names == ("Ant", "moth", "zebra")  # as ImageFolder sorts them
    assert [(name, path.relative_to(folder).as_posix()) for name, path in listing.files] == [
        ("Ant", "Ant/0.png"),
        ("moth", "moth/0.png"),
        ("moth", "moth/1.png"),
        ("moth", "moth/night/late.png"),
        ("zebra", "zebra/0.png"),
        ("zebra", "zebra/1.png"),
    ]
    assert listing.outside_classes == [folder / "README.md"]


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"cat": 3}, "has one class folder (cat); a classifier needs at least 2: put each class's images"),
        ({}, "has no class folder; a classifier needs at least 2"),
        ({"cat": 2, "dog": 0, "eel": 0}, "these class folders hold no files: dog, eel. Add images"),
    ],
)
def test_a_folder_that_cannot_make_a_dataset_says_why(tmp_path: Path, layout: dict, expected: str) -> None:
    folder = make_folder(tmp_path / "images", layout)
    folder.mkdir(exist_ok=True)
    with pytest.raises(DataError) as caught:
        list_folder(folder)
    assert str(caught.value).startswith(str(folder))
    assert expected in str(caught.value)


def test_a_missing_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.folder = .*/images does not exist: point data\.folder \(params"):
        list_folder(tmp_path / "images")


def test_a_file_given_as_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"images\.zip is a file, not a folder: point data\.folder"):
        list_folder(tmp_path / "images.zip")


def test_pixel_digest_is_the_picture_not_the_file(tmp_path: Path) -> None:
    picture = grey(4)
    picture.save(tmp_path / "a.png", compress_level=9)
    picture.convert("RGB").save(tmp_path / "b.png", compress_level=0)  # grey stored as RGB, other bytes
    picture.save(tmp_path / "c.png", pnginfo=None, dpi=(300, 300))
    picture.convert("RGB").save(tmp_path / "d.jpg", quality=95)
    digests = [pixel_digest(open_image(tmp_path / name)) for name in ("a.png", "b.png", "c.png", "d.jpg")]
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    assert digests[0] == digests[1] == digests[2]
    assert digests[3] != digests[0]  # JPEG is lossy: not the same pixels
    assert pixel_digest(grey(5)) != digests[0]
    assert pixel_digest(picture.transpose(Image.Transpose.ROTATE_90)) != digests[0]


def test_read_folder_lists_every_unreadable_file_then_refuses_or_leaves_them_out(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    (folder / "cat" / "notes.txt").write_text("hello")
    (folder / "dog" / "2.png").write_bytes(b"")
    with pytest.raises(DataError) as caught:
        read_folder(folder, first_pixel)
    message = str(caught.value)
    assert message.startswith(f"2 of 7 files in {folder} are not readable PNG or JPEG images:\n")
    assert "  cat/notes.txt: not a PNG or JPEG image (only these two are read)\n  dog/2.png: an empty file\n" in message
    assert "data.skip_unreadable: true" in message
    images = read_folder(folder, first_pixel, skip_unreadable=True)
    assert images.unreadable == [
        ("cat/notes.txt", "not a PNG or JPEG image (only these two are read)"),
        ("dog/2.png", "an empty file"),
    ]
    assert images.images.shape == (5, 1, 1)
    assert images.labels.tolist() == [0, 0, 0, 1, 1]
    assert [record.path for record in images.records] == [
        "cat/0.png",
        "cat/1.png",
        "cat/2.png",
        "dog/0.png",
        "dog/1.png",
    ]
    assert (images.records[0].width, images.records[0].height) == (20, 14)
    assert images.records[0].mode == "L"


def test_a_class_left_with_no_readable_picture_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", {"cat": 2})
    (folder / "dog").mkdir()
    (folder / "dog" / "a.png").write_text("not a picture")
    with pytest.raises(DataError, match="no readable image is left in the class folders dog"):
        read_folder(folder, first_pixel, skip_unreadable=True)


def test_progress_is_told_each_file(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", {"cat": 2, "dog": 1})
    (folder / "dog" / "bad.png").write_text("x")
    seen = []
    read_folder(folder, first_pixel, skip_unreadable=True, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_the_example_folder_is_the_same_every_time_and_as_messy_as_promised(tmp_path: Path) -> None:
    first = make_example_folder(tmp_path / "one", per_class=12)
    second = make_example_folder(tmp_path / "two", per_class=12)
    assert [path.relative_to(tmp_path / "one") for path in first] == [
        path.relative_to(tmp_path / "two") for path in second
    ]
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == list(SHAPES)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(open_image(a)), np.asarray(open_image(b))), a
    pictures = [open_image(path) for path in first]
    assert {picture.format for picture in pictures} == {"PNG", "JPEG"}
    assert {picture.mode for picture in pictures} == {"L", "RGB"}
    assert len({picture.size for picture in pictures}) > 30
    # The first pictures of the shipped folder are these.
    shipped = Path(__file__).resolve().parents[3] / "examples" / "shapes"
    for path in first:
        relative = path.relative_to(tmp_path / "one")
        assert np.array_equal(np.asarray(open_image(path)), np.asarray(open_image(shipped / relative))), relative


def test_the_example_never_overwrites_pictures_unless_asked(tmp_path: Path) -> None:
    mine = make_folder(tmp_path / "images", {"cat": 1})
    with pytest.raises(DataError, match=r"images is not empty: write the example into a new folder, or replace it"):
        make_example_folder(mine, per_class=1)
    assert (mine / "cat" / "0.png").is_file()
    written = make_example_folder(mine, per_class=1, replace=True)
    assert sorted(path.parent.name for path in written) == sorted(SHAPES)
    assert not (mine / "cat").exists()
    (tmp_path / "empty").mkdir()
    assert len(make_example_folder(tmp_path / "empty", per_class=2)) == 8

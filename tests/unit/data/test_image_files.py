"""digitflow.data.image_files: PNG and JPEG only, by content; bombs, truncated and foreign files refused with
one message naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitflow.data.image_files import ImageFileError, open_image
from tests.support.bad_images import bomb_png, eps, truncated_jpeg


def test_png_and_jpeg_are_opened_by_content_not_by_name(tmp_path: Path) -> None:
    pixels = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (25, 1))
    png_named_jpg = tmp_path / "scan.jpg"
    Image.fromarray(pixels, mode="L").save(png_named_jpg, format="PNG")
    jpeg = tmp_path / "photo.jpeg"
    Image.fromarray(pixels, mode="L").convert("RGB").save(jpeg, format="JPEG")
    image = open_image(png_named_jpg)
    assert (image.format, image.size) == ("PNG", (25, 25))
    np.testing.assert_array_equal(np.asarray(image), pixels)  # decoded, though its file is closed
    assert open_image(jpeg).format == "JPEG"


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda folder: eps(folder / "digit.png"), "not a PNG or JPEG image"),  # an EPS named .png
        (lambda folder: bomb_png(folder / "huge.png"), "more than 89,478,485 pixels"),
        (lambda folder: bomb_png(folder / "large.png", side=10_000), "more than 89,478,485 pixels"),  # a warning
        (lambda folder: truncated_jpeg(folder / "cut.jpg"), "damaged or truncated image"),
        (lambda folder: folder / "missing.png", "no such file"),
        (lambda folder: empty(folder / "blank.png"), "an empty file"),
    ],
    ids=["eps", "bomb-30000x30000", "bomb-10000x10000", "truncated-jpeg", "missing", "empty"],
)
def test_anything_else_is_one_error_naming_the_file(tmp_path: Path, make, says: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageFileError) as caught:
        open_image(path)
    assert str(caught.value).startswith(f"{path}: {says}")


def test_a_format_pillow_reads_is_still_refused(tmp_path: Path) -> None:
    gif = tmp_path / "digit.gif"
    Image.new("L", (8, 8)).save(gif)
    with pytest.raises(ImageFileError, match="not a PNG or JPEG image"):
        open_image(gif)

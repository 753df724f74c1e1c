"""Image files from users, opened one way everywhere: PNG and JPEG only, whole, and of a sane size.

Pillow opens any format it has a plugin for, some through outside programs (EPS runs Ghostscript), picks
the plugin by the file's content, and reads pixels only when asked. So a file is opened here with the two
formats allowed (by content: a PNG named ``.jpg`` is a PNG, an EPS named ``.png`` is refused), read at
once (a truncated JPEG fails here, not halfway through a conversion) and refused beyond Pillow's pixel
limit (``Image.MAX_IMAGE_PIXELS``, about 89 million: its warning is an error here, and
``DecompressionBombError``, which is no ``OSError``, is caught). Every refusal is one ``ImageFileError``
naming the file and what is wrong with it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from digitflow.core.errors import DigitflowError

if TYPE_CHECKING:
    from PIL import Image

ACCEPTED_FORMATS = ("PNG", "JPEG")


class ImageFileError(DigitflowError):
    """An image file that is not a whole PNG or JPEG of a sane size; the message names the file and the
    reason (``reason`` alone, for a list of files such as a folder's)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def open_image(path: Path) -> Image.Image:
    """The picture in ``path``, decoded, its file closed; ``ImageFileError`` for anything else."""
    from PIL import Image, UnidentifiedImageError

    if path.is_file() and path.stat().st_size == 0:
        raise ImageFileError(path, "an empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=ACCEPTED_FORMATS) as image:
                image.load()
                return image
        except UnidentifiedImageError:
            raise ImageFileError(path, "not a PNG or JPEG image (only these two are read)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageFileError(
                path,
                f"more than {Image.MAX_IMAGE_PIXELS:,} pixels, the most read here (a decompression bomb, "
                "or a picture far larger than a digit needs): scale it down first",
            ) from None
        except FileNotFoundError:
            raise ImageFileError(path, "no such file") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageFileError(path, f"damaged or truncated image ({exc})") from None

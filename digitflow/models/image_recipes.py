"""How a picture becomes a model's input: the recipe its dataset's images were made by, applied to a photo.

A model knows only images made the way its training set's were. Both datasets began as black-and-white
scans of digits written on NIST forms, normalised in size and position; a photo of a digit is dark ink on
paper that is not white (grey 211-247 is typical), a little blurred and noisy, in colour, of any size,
with the digit anywhere in it. Plain resizing left the paper at 10-45 on every pixel where the datasets
have exactly 0, and the digit at another size and place: the MNIST-trained models answered "1" for nearly
every photo (issue 20). So a picture goes through the same steps as the dataset's images did.

**Ink** (``find_ink``, both recipes). Greyscale, with the camera's EXIF rotation applied, transparent
pixels on white, 16-bit levels scaled, light noise smoothed. The ink is on the side of the picture's
extremes farther from the border's median (dark ink on light paper, or light on dark). The paper's level
is a quadratic surface fitted to a thin ring along the border, so light falling off across the page is
paper too (``paper_level``: a digit touching the border is left out of the fit), and its spread is three
robust standard deviations of the noise there; ink is what is darker than the paper by more than that
spread, so the paper becomes exactly 0. The ink is then stretched so its 95th percentile is full ink:
pencil and black ink look alike, as in the binarised scans both datasets came from.

**MNIST** (``"mnist"``; LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/): "The original black
and white (bilevel) images from NIST were size normalized to fit in a 20x20 pixel box while preserving
their aspect ratio. The resulting images contain grey levels as a result of the anti-aliasing technique
used by the normalization algorithm. The images were centered in a 28x28 image by computing the center
of mass of the pixels, and translating the image so as to position this point at the center of the
28x28 field." Here: the ink's bounding box (ink above half) is resized, antialiased, so its longer side
is 20 pixels, stretched again so its strongest ink is 255, and placed in 28x28 with its centre of mass on
pixel (14, 14), where MNIST's own images have it (13.99, 14.01 on average over its test set).

**UCI digits** (``"uci-digits"``; E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits",
UCI Machine Learning Repository, 1998; scikit-learn's ``load_digits`` is its test set): "Preprocessing
programs made available by NIST were used to extract normalized bitmaps of handwritten digits [...]
32x32 bitmaps are divided into nonoverlapping blocks of 4x4 and the number of on pixels are counted in
each block. This generates an input matrix of 8x8 where each element is an integer in the range 0..16."
What the normalisation did shows in the data: every image's ink spans all 8 rows, widths vary (thin 1s
stay 2-5 blocks wide: the aspect ratio is kept) and the ink sits in the middle columns. Here: the ink's
bounding box is scaled so its height fills 32 rows (its width 32 columns if it is wider than tall),
keeping its aspect ratio, centred in 32x32, and each 4x4 block counts the ink it covers: the sum of its
16 pixels' ink fractions, which is the number of on pixels a binarised bitmap would have, without
throwing away what a photo holds below one pixel. A picture already framed like those bitmaps (ink from
its top edge to its bottom edge, no wider than tall, the ink within one block of the middle: a digits
image drawn large, or a scan of one) is scaled whole instead: these 8x8 linear models are so sensitive
to position that re-centring by a quarter of a block changes 7-20 % of their answers.

**Already in the dataset's format.** A picture of the model's image size on a dark background (an 8x8
PNG of digits' values, a 28x28 MNIST image) passes through unchanged, scaled to the pixel range only.

A picture that still does not look like a digit on plain paper (no ink: a blank page, a grey wall; ink on
every border: a crop through the digit, a texture) comes with ``problems``, so its prediction is shown
with a warning rather than as a confident digit without comment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

INK = 0.5  # a pixel at least half as dark as full ink is ink (the edge a binarised scan would draw)
FAINT_INK = 0.05  # ... and one twentieth is faint ink: a block of a digits image with one on-pixel in 16
DARK_BACKGROUND = 32  # grey level: a picture whose border is darker is light ink on black, as the datasets
LARGEST_SIDE = 1024  # pixels: a larger picture is reduced first (a 12-megapixel photo would take seconds)
FULL_INK_PERCENTILE = 95  # of the ink pixels: darker than this is full ink
# Less contrast than this between ink and paper (grey levels, or noise spreads) is no ink at all.
MIN_CONTRAST = 24.0
MIN_CONTRAST_SPREADS = 2.0
NO_INK = "no ink found: nothing stands out from the background (a blank or nearly uniform picture?)"
MNIST_BOX, MNIST_FRAME = 20, 28
UCI_BITMAP, UCI_BLOCK = 32, 4


@dataclass
class Ink:
    """A picture as ink coverage: 0 is paper, 1 full ink; ``problems`` say why it may not be a digit."""

    coverage: np.ndarray
    problems: list[str] = field(default_factory=list)

    def found(self) -> bool:
        return bool((self.coverage > INK).any())


@dataclass
class Conversion:
    """What the model sees: its input image in the dataset's pixel values, and the problems found."""

    pixels: np.ndarray  # (height, width) float32, 0..pixel_max, ink high
    recipe: str
    problems: list[str]


def greyscale(image: Image.Image) -> np.ndarray:
    """The picture as float32 grey levels 0..255 (16-bit ones scaled), upright (EXIF), transparency
    flattened onto white, reduced by area averaging to at most ``LARGEST_SIDE`` pixels a side."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if image.mode.startswith("I"):  # 16-bit greyscale (scanners): Pillow's "L" would clip it to white
        levels = np.asarray(image, dtype=np.float32)
        grey = Image.fromarray(levels / 257 if image.mode != "I" or levels.max() > 255 else levels, mode="F")
    else:
        grey = image.convert("L")
    factor = -(-max(grey.size) // LARGEST_SIDE)
    return np.asarray(grey.reduce(factor) if factor > 1 else grey, dtype=np.float32)


def paper_level(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """The paper's grey level at every pixel of a picture with dark ink, and its spread (noise, texture).

    A quadratic surface, so light falling off across the page is paper too, fitted to a thin ring along
    the border: first to its lighter half, then to all but the pixels darker than that paper by more than
    three noise deviations (a digit touching the border), fit after fit. The noise is measured on the
    paper's light side, where no ink can be."""
    height, width = grey.shape
    ring = max(1, round(min(height, width) * 0.04))
    on_ring = np.ones_like(grey, dtype=bool)
    on_ring[ring:-ring, ring:-ring] = False
    rows, cols = np.nonzero(on_ring)
    y, x = rows / height - 0.5, cols / width - 0.5
    terms = np.column_stack([np.ones_like(x), x, y, x * x, y * y, x * y])
    values = grey[on_ring]
    paper = values >= np.median(values)  # the lighter half first: ink may cover less than half the ring
    for _ in range(5):
        used = terms[paper]
        try:  # least squares by the normal equations: 6 unknowns on centred coordinates, 20x faster than lstsq
            coefficients = np.linalg.solve(used.T @ used, used.T @ values[paper])
        except np.linalg.LinAlgError:  # too few distinct pixels for a surface (a picture 1 or 2 pixels wide)
            coefficients = np.linalg.lstsq(used, values[paper], rcond=None)[0]
        residual = values - terms @ coefficients
        above = residual[paper & (residual > 0)]
        # A robust standard deviation; at least half a grey level, the rounding of whole levels.
        noise = max(1.4826 * float(np.median(above)) if above.size else 0.0, 0.5)
        paper = residual >= -3 * noise
    y, x = np.arange(height)[:, None] / height - 0.5, np.arange(width)[None, :] / width - 0.5
    c = coefficients
    return c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * y * y + c[5] * x * y, 3 * noise


def find_ink(grey: np.ndarray) -> Ink:
    """Ink coverage 0..1 of a greyscale picture: paper level and noise removed, ink stretched to full.

    Dark ink on light paper or light ink on dark: the ink is on the side of the picture's extremes
    farther from the paper (the median of the border)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(grey, min(grey.shape) / 200)  # 1 pixel at 200x200: noise, not strokes
    border = np.concatenate([smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1]])
    darkest, lightest = np.percentile(smooth, [0.5, 99.5])
    if np.median(border) - darkest < lightest - np.median(border):
        smooth = 255 - smooth  # light ink on dark paper: made dark on light
    paper, spread = paper_level(smooth)
    ink = np.clip(paper - smooth - spread, 0, None)
    inked = ink[ink > 0]
    full = float(np.percentile(inked, FULL_INK_PERCENTILE)) if inked.size else 0.0
    if full < max(MIN_CONTRAST, MIN_CONTRAST_SPREADS * spread):
        return Ink(np.zeros_like(ink), [NO_INK])
    coverage = np.clip(ink / full, 0, 1)
    problems = []
    mask = coverage > INK
    if mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any():
        problems.append("the ink touches every border: is the whole digit in the picture, on plain paper?")
    return Ink(coverage, problems)


def _ink_box(coverage: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(coverage > INK)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def _fit(crop: np.ndarray, box: int) -> np.ndarray:
    """``crop`` resized so its longer side is ``box`` pixels, keeping its aspect ratio, by area averaging:
    each new pixel holds the share of its area that is ink (the anti-aliasing of MNIST's grey levels, the
    count of the UCI blocks)."""
    from PIL import Image

    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
    return np.clip(np.asarray(resized), 0, 1)


def mnist_image(ink: Ink) -> np.ndarray:
    """MNIST's recipe: the ink fitted into 20x20, placed in 28x28 by its centre of mass; ink 0..1."""
    from scipy import ndimage

    frame = np.zeros((MNIST_FRAME, MNIST_FRAME), np.float32)
    if not ink.found():
        return frame
    digit = _fit(ink.coverage[_ink_box(ink.coverage)], MNIST_BOX)
    digit = digit / digit.max()
    place = np.round(np.array([MNIST_FRAME / 2] * 2) - ndimage.center_of_mass(digit)).astype(int)
    top, left = np.clip(place, 0, MNIST_FRAME - np.array(digit.shape))  # the whole digit stays in the frame
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame


def _framed_like_uci(coverage: np.ndarray) -> bool:
    """Ink on the top and bottom edges, no wider than tall, ink centred within one block (1/8 of the width).

    Faint ink counts: a digits image drawn large shows a block with one on-pixel as a light grey."""
    height, width = coverage.shape
    cols = np.nonzero((coverage > FAINT_INK).any(axis=0))[0]
    touches = (coverage[0] > FAINT_INK).any() and (coverage[-1] > FAINT_INK).any()
    return bool(touches and width <= height and abs((cols[0] + cols[-1] + 1) / 2 - width / 2) <= width / 8)


def uci_digits_image(ink: Ink) -> np.ndarray:
    """The UCI recipe: the ink's box scaled into 32x32 (height filling it), on-pixels counted per 4x4
    block; as a fraction of the block (0..1)."""
    bitmap = np.zeros((UCI_BITMAP, UCI_BITMAP), np.float32)
    blocks = UCI_BITMAP // UCI_BLOCK
    if not ink.found():
        return bitmap[:blocks, :blocks]
    crop = ink.coverage if _framed_like_uci(ink.coverage) else ink.coverage[_ink_box(ink.coverage)]
    digit = _fit(crop, UCI_BITMAP)
    top, left = (UCI_BITMAP - digit.shape[0]) // 2, (UCI_BITMAP - digit.shape[1]) // 2
    bitmap[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return bitmap.reshape(blocks, UCI_BLOCK, blocks, UCI_BLOCK).mean(axis=(1, 3))


RECIPES: dict[str, Callable[[Ink], np.ndarray]] = {"mnist": mnist_image, "uci-digits": uci_digits_image}


def convert(image: Image.Image, recipe: str, image_shape: tuple[int, int], pixel_max: int) -> Conversion:
    """A picture as the model's input image, by ``recipe``; one already in the dataset's format passes."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown image recipe {recipe!r}; known: {', '.join(RECIPES)}")
    grey = greyscale(image)
    ink = find_ink(grey)
    height, width = image_shape
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if grey.shape == (height, width) and np.median(edge) < DARK_BACKGROUND:  # the dataset's own format
        pixels = grey * (pixel_max / 255.0)
    else:
        pixels = RECIPES[recipe](ink) * pixel_max
    if pixels.shape != (height, width):
        raise ValueError(f"the {recipe} recipe makes {pixels.shape} images, the model takes {image_shape}")
    return Conversion(pixels.astype(np.float32), recipe, ink.problems)

"""The example folder of labelled pictures: four classes of hand-drawn-looking symbols, made here, not
downloaded (``digitflow example-images DIR``; ``examples/shapes`` in the repository is its output).

Made as users' crops of scans and photos are: each picture its own size (30-72 pixels a side, not
square), the symbol near its middle, at its own size and angle, pen strokes of varying width on
off-white paper with light falling off across it and noise; a fifth of them in colour (blue or red pen
on tinted paper), a sixth saved as JPEG, and one in twelve chalk-like light ink on a dark board. Every
picture comes from its own seeded random generator, so the same command makes the same pictures (the
files byte for byte with the same zlib and libjpeg).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from digitflow.core.errors import DataError
from digitflow.core.io import atomic_dir

SHAPES = ("circle", "cross", "square", "triangle")
PER_CLASS = 40
SEED = 25


def _outline(shape: str, centre: tuple[float, float], radius: float, angle: float) -> list[list[tuple[float, float]]]:
    """The strokes of ``shape`` as polylines, on a canvas in pixels."""
    x0, y0 = centre

    def turned(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        cos, sin = math.cos(angle), math.sin(angle)
        return [(x0 + x * cos - y * sin, y0 + x * sin + y * cos) for x, y in points]

    if shape == "circle":
        return [turned([(radius * math.cos(t), radius * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)])]
    if shape == "square":
        side = radius * 0.8
        return [turned([(-side, -side), (side, -side), (side, side), (-side, side), (-side, -side)])]
    if shape == "triangle":
        corners = [(radius * math.cos(t), radius * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        return [turned([*corners, corners[0]])]
    return [turned([(-radius, 0), (radius, 0)]), turned([(0, -radius), (0, radius)])]  # cross


def draw_symbol(shape: str, seed: int) -> tuple[object, str]:
    """One picture of ``shape`` (a PIL image) and the format to save it in, from ``seed`` alone."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = (int(value) for value in rng.integers(30, 73, size=2))
    scale = 4  # drawn large, then reduced: smooth strokes as a pen's
    radius = min(width, height) * rng.uniform(0.26, 0.42) * scale
    # Cut out around the symbol, as a form field or a crop is: near the middle, not exactly in it.
    centre = (width * scale * rng.uniform(0.42, 0.58), height * scale * rng.uniform(0.42, 0.58))
    angle = rng.uniform(-0.35, 0.35) if shape != "circle" else 0.0
    stroke = int(rng.uniform(0.06, 0.13) * min(width, height) * scale)
    canvas = Image.new("L", (width * scale, height * scale), 0)
    draw = ImageDraw.Draw(canvas)
    for line in _outline(shape, centre, radius, angle):
        wobble = [(x + rng.normal(0, scale * 0.4), y + rng.normal(0, scale * 0.4)) for x, y in line]
        draw.line(wobble, fill=255, width=stroke, joint="curve")
    ink = np.asarray(canvas.resize((width, height), Image.Resampling.BOX), dtype=np.float32) / 255

    board = rng.random() < 1 / 12
    paper, pen = (rng.uniform(30, 60), rng.uniform(200, 240)) if board else (rng.uniform(205, 245), rng.uniform(20, 90))
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1 + rng.uniform(-0.08, 0.08) * (xs / width - 0.5) + rng.uniform(-0.08, 0.08) * (ys / height - 0.5)
    grey = (paper * light) * (1 - ink) + pen * ink + rng.normal(0, rng.uniform(1, 5), size=(height, width))
    grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    picture = Image.fromarray(grey, mode="L").filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.6)))
    if rng.random() < 0.2:  # a coloured pen on tinted paper
        tint = np.asarray(picture, dtype=np.float32)[..., None] / 255
        colour = np.array([rng.uniform(0.92, 1.0), rng.uniform(0.9, 1.0), rng.uniform(0.85, 0.98)])
        pen_colour = np.array([40, 60, 170]) if rng.random() < 0.5 else np.array([180, 40, 40])
        rgb = tint * 255 * colour + (1 - tint) * pen_colour * (1 - tint.mean())
        picture = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), mode="RGB")
    return picture, "JPEG" if rng.random() < 1 / 6 else "PNG"


def make_example_folder(
    destination: Path, per_class: int = PER_CLASS, seed: int = SEED, replace: bool = False
) -> list[Path]:
    """``destination/<shape>/<shape>-NNN.png`` (or ``.jpg``), ``per_class`` pictures of each shape, written
    whole or not at all. A folder that holds anything is refused (it may be someone's pictures) unless
    ``replace``, which replaces it whole, so it never mixes pictures of two calls."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    destination = Path(destination)
    if not replace and destination.exists() and any(destination.iterdir()):
        raise DataError(f"{destination} is not empty: write the example into a new folder, or replace it (--replace)")
    written = []
    with atomic_dir(Path(destination)) as staging:
        for number, shape in enumerate(SHAPES):
            (staging / shape).mkdir()
            for index in range(per_class):
                picture, kind = draw_symbol(shape, seed * 100_000 + number * 1_000 + index)
                name = f"{shape}-{index:03d}.{'jpg' if kind == 'JPEG' else 'png'}"
                options = {"quality": 90} if kind == "JPEG" else {"optimize": True}
                picture.save(staging / shape / name, format=kind, **options)
                written.append(Path(destination) / shape / name)
    return written

"""What the model saw: per image file, a PNG of the picture beside the image the model was given for it,
with the prediction and any warnings, so a user can see why a prediction went wrong (``predict --show``).
Drawn with Pillow (matplotlib cost about 0.12 s per image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.core.io import atomic_path
from digitflow.models.card import ModelCard
from digitflow.models.image_recipes import Conversion, greyscale


def view_names(files: Sequence[Path]) -> list[str]:
    """``<name>_seen.png`` per file, numbered where two files share a name."""
    names: list[str] = []
    for file in files:
        name, number = f"{file.stem}_seen.png", 2
        while name in names:
            name, number = f"{file.stem}_seen-{number}.png", number + 1
        names.append(name)
    return names


VIEW_HEIGHT = 280  # pixels of each picture in a view: a 28x28 input shows as 10x10 squares, 8x8 as 35x35


def seen_beside(picture: Any, conversion: Conversion, pixel_max: int, title: str, caption: str) -> Any:
    """One PIL image: the picture, the image the model was given for it (ink light on black, as in its
    dataset, each pixel a visible square) at the same height, the prediction and any problems beneath."""
    from PIL import Image, ImageDraw, ImageFont

    width = max(1, round(picture.width * VIEW_HEIGHT / picture.height))
    left = picture.convert("RGB").resize((width, VIEW_HEIGHT), Image.Resampling.LANCZOS)
    seen = np.clip(np.round(conversion.pixels * 255 / pixel_max), 0, 255).astype(np.uint8)
    right = Image.fromarray(seen, mode="L").resize((VIEW_HEIGHT, VIEW_HEIGHT), Image.Resampling.NEAREST)
    font = ImageFont.load_default(size=14)
    lines = [(caption, "black")] + [(problem, "darkred") for problem in conversion.problems]
    margin, line = 10, 20
    view = Image.new("RGB", (width + VIEW_HEIGHT + 3 * margin, VIEW_HEIGHT + (2 + len(lines)) * line + margin), "white")
    view.paste(left, (margin, margin + line))
    view.paste(right.convert("RGB"), (width + 2 * margin, margin + line))
    draw = ImageDraw.Draw(view)
    draw.text((margin, margin), title, fill="black", font=font)
    height, columns = conversion.pixels.shape
    draw.text((width + 2 * margin, margin), f"what the model saw: {columns}x{height}", fill="black", font=font)
    for number, (text, colour) in enumerate(lines):
        draw.text((margin, 2 * margin + line + VIEW_HEIGHT + number * line), text, fill=colour, font=font)
    return view


def write_views(
    folder: Path, files: Sequence[Path], conversions: Sequence[Conversion], proba: np.ndarray, card: ModelCard
) -> list[Path]:
    """Per image file, a PNG in ``folder``: the picture beside what the model saw, with the prediction."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file, name, conversion, row in zip(files, view_names(files), conversions, proba, strict=True):
        digit = int(row.argmax())
        with Image.open(file) as image:
            title = f"{file.name} ({image.width}x{image.height} {image.mode})"
            caption = f"predicted {digit} (probability {row[digit]:.3f}), {conversion.recipe} recipe"
            # Other modes (transparent, 16-bit, palette) shown as the recipe read them: grey, on white.
            plain = image.mode in ("RGB", "L") and "transparency" not in image.info
            picture = ImageOps.exif_transpose(image) if plain else Image.fromarray(greyscale(image).astype(np.uint8))
            view = seen_beside(picture, conversion, card.pixel_max, title, caption)
        with atomic_path(folder / name) as tmp:
            view.save(tmp, format="PNG")
        written.append(folder / name)
    return written

"""Predictions from image files: convert them by their dataset's recipe, then ask a model.

Both datasets hold digits as light ink on a zero background, size-normalised and centred, in their own
pixel range (0..16 for digits, 0..255 for MNIST). A photo or scan is usually dark ink on paper that is
not white, in colour, of any size, with the digit anywhere. ``convert_files`` brings each picture to what
the model saw in training, following the recipe in the model card (``digitflow/image_recipes.py``
describes both, with their sources); the model does the rest, its scaling is part of it. A picture that
still does not look like a digit on plain paper is predicted all the same, with a warning naming it, and
``write_views`` draws what the model saw beside each picture, to see why a prediction went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitflow import paths
from digitflow.artifacts import read, reading
from digitflow.data import IMAGE_RECIPES
from digitflow.errors import DigitflowError
from digitflow.image_recipes import RECIPES, Conversion, convert, greyscale
from digitflow.io import read_json

Predictor = Callable[[np.ndarray], np.ndarray]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    """What a model expects: the image shape, the value of full ink and the recipe that makes its images
    (from ``training.model_card``; a card written before the recipe was recorded gets its dataset's)."""

    dataset: str
    image_shape: tuple[int, int]
    pixel_max: int
    image_recipe: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        recipe = data.get("image_recipe") or IMAGE_RECIPES.get(data["dataset"], "")
        if recipe not in RECIPES:
            raise DigitflowError(
                f"the model's card asks for the image recipe {recipe!r} (dataset {data['dataset']!r}), which this "
                f"version of digitflow does not know (it knows {', '.join(RECIPES)}): update digitflow"
            )
        return cls(data["dataset"], tuple(data["image_shape"]), int(data["pixel_max"]), recipe)


def convert_image(image: Any, card: ModelCard) -> Conversion:
    """A PIL image of any size and mode -> the model's input image, by the card's recipe."""
    return convert(image, card.image_recipe, card.image_shape, card.pixel_max)


def convert_files(files: Sequence[Path], card: ModelCard) -> list[Conversion]:
    """Each image file converted for the model; one message naming every file that cannot be read, and a
    warning per file that does not look like a digit on plain paper."""
    from PIL import Image, UnidentifiedImageError

    conversions, problems = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                conversions.append(convert_image(image, card))
        except (OSError, UnidentifiedImageError) as exc:
            problems.append(f"  {file}: {exc}")
    if problems:
        raise DigitflowError("cannot read these images (PNG or JPEG expected):\n" + "\n".join(problems))
    for file, conversion in zip(files, conversions, strict=True):
        if conversion.problems:
            log.warning(
                "warning: %s does not look like a digit on plain paper: %s. Its prediction is unreliable "
                "(--show DIR draws what the model saw).",
                file,
                "; ".join(conversion.problems),
            )
    return conversions


def pixel_rows(conversions: Sequence[Conversion]) -> np.ndarray:
    """The models' input: one float32 row of raw pixels per converted image."""
    return np.stack([conversion.pixels.ravel() for conversion in conversions]).astype(np.float32)


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

    from digitflow.io import atomic_path

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


def local_predictor(model: str) -> tuple[Predictor, ModelCard]:
    """A model trained by the pipeline, from ``models/``: probabilities of raw-pixel rows."""
    card_file = paths.model_card_file(model)
    with reading(card_file):  # missing or damaged: one message with the repair (dvc checkout / repro)
        card = ModelCard.from_dict(read_json(card_file))
    if model == "sklearn":
        from digitflow.sklearn_model import load_model

        return read(paths.SKLEARN_MODEL_FILE, load_model).predict_proba, card
    from digitflow.torch_model import load_model, predict_proba

    net = read(paths.TORCH_MODEL_FILE, load_model, card.image_shape[0] * card.image_shape[1])
    return (lambda rows: predict_proba(net, rows)), card


def registry_predictor(model_uri: str) -> tuple[Predictor, ModelCard]:
    """A logged or registered MLflow model (``models:/digitflow-torch@champion``), as pyfunc."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    metadata = pyfunc.metadata.metadata or {}
    if not {"image_shape", "pixel_max", "dataset"} <= set(metadata):
        raise DigitflowError(f"{model_uri} was not logged by digitflow's training stages (no image metadata)")
    card = ModelCard.from_dict(metadata)
    return (lambda rows: np.asarray(pyfunc.predict(rows))), card

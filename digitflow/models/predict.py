"""Predictions from image files: convert them by their dataset's recipe, then ask a model.

Both datasets hold digits as light ink on a zero background, size-normalised and centred, in their own
pixel range (0..16 for digits, 0..255 for MNIST). A photo or scan is usually dark ink on paper that is
not white, in colour, of any size, with the digit anywhere. ``convert_files`` brings each picture to what
the model saw in training, following the recipe in the model card (``models/image_recipes.py``
describes both, with their sources); the model does the rest, its scaling is part of it. A picture that
still does not look like a digit on plain paper is predicted all the same, with a warning naming it, and
``views.write_views`` draws what the model saw beside each picture, to see why a prediction went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.core import paths
from digitflow.core.errors import DigitflowError
from digitflow.core.inputs import read, reading
from digitflow.core.io import read_json
from digitflow.models.card import ModelCard
from digitflow.models.image_recipes import Conversion, convert

Predictor = Callable[[np.ndarray], np.ndarray]
log = logging.getLogger(__name__)


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


def local_predictor(model: str) -> tuple[Predictor, ModelCard]:
    """A model trained by the pipeline, from ``models/``: probabilities of raw-pixel rows."""
    card_file = paths.model_card_file(model)
    with reading(card_file):  # missing or damaged: one message with the repair (dvc checkout / repro)
        card = ModelCard.from_dict(read_json(card_file))
    if model == "sklearn":
        from digitflow.models.sklearn_model import load_model

        return read(paths.SKLEARN_MODEL_FILE, load_model).predict_proba, card
    from digitflow.models.torch_model import load_model, predict_proba

    net = read(paths.TORCH_MODEL_FILE, load_model, card.n_features)
    return (lambda rows: predict_proba(net, rows)), card

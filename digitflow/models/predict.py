"""Predictions from image files: convert them the way the datasets' images were made, then ask a model.

Both datasets hold digits as light ink on a dark (zero) background, in their own pixel range (0..16 for
digits, 0..255 for MNIST). A photo or scan is usually the opposite: dark ink on white paper, in colour,
of any size. ``image_to_pixels`` makes the one into the other: greyscale, resized by area averaging
(how the 8x8 digits were made from 32x32 bitmaps), inverted when the background is light, and scaled
to the dataset's range. The model does the rest: its scaling is part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.core import paths
from digitflow.core.errors import DigitflowError
from digitflow.core.inputs import read, reading
from digitflow.core.io import read_json
from digitflow.models.card import ModelCard

Predictor = Callable[[np.ndarray], np.ndarray]


def image_to_pixels(image: Any, card: ModelCard) -> np.ndarray:
    """A PIL image of any size and mode -> one float32 row of the dataset's pixels, ink high."""
    from PIL import Image

    grey = image.convert("L")
    height, width = card.image_shape
    small = np.asarray(grey.resize((width, height), Image.Resampling.BOX), dtype=np.float64)
    # The border tells paper from ink: a light border is paper, so ink is dark and gets inverted.
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    if border.mean() > 127.5:
        small = 255.0 - small
    return (small * card.pixel_max / 255.0).reshape(1, -1).astype(np.float32)


def read_images(files: Sequence[Path], card: ModelCard) -> np.ndarray:
    """Rows of pixels for image files; one message naming every file that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    rows, problems = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                rows.append(image_to_pixels(image, card))
        except (OSError, UnidentifiedImageError) as exc:
            problems.append(f"  {file}: {exc}")
    if problems:
        raise DigitflowError("cannot read these images (PNG or JPEG expected):\n" + "\n".join(problems))
    return np.concatenate(rows)


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

"""A trained model's folder, ``models/<model>/``: the model file, its coefficients (for the report's
images) and its card, written all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitflow.core import paths
from digitflow.core.io import atomic_dir, save_arrays, write_json
from digitflow.data.datasets import DatasetMeta
from digitflow.models.card import model_card


def write_model_dir(
    model_name: str, save: Callable[[Path], None], coefficients: tuple[np.ndarray, np.ndarray], meta: DatasetMeta
) -> None:
    """``models/<model>/``, replaced whole: the model file (``save(path)``), coefficients and card."""
    coef, intercept = coefficients
    with atomic_dir(paths.model_dir(model_name)) as out:
        save(out / paths.model_file(model_name).name)
        save_arrays(out / paths.coef_file(model_name).name, coef=coef, intercept=intercept)
        write_json(out / paths.MODEL_CARD_NAME, model_card(meta))

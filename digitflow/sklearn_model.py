"""The scikit-learn logistic regression: built from params, saved without pickle (skops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from digitflow.io import atomic_path
from digitflow.params import TrainSklearnParams


def build_model(params: TrainSklearnParams, seed: int = 0) -> LogisticRegression:
    return LogisticRegression(
        C=params.C,
        solver=params.solver,
        max_iter=params.max_iter,
        tol=params.tol,
        class_weight=params.class_weight,
        random_state=seed,
    )


def save_model(model: LogisticRegression, path: Path) -> None:
    import skops.io

    with atomic_path(path) as tmp:
        skops.io.dump(model, tmp)


def load_model(path: Path) -> LogisticRegression:
    """Load a model saved by ``save_model``; refuse any type skops does not trust by default."""
    import skops.io

    return skops.io.load(path)


def coefficients(model: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(model.coef_, dtype=np.float32), np.asarray(model.intercept_, dtype=np.float32)

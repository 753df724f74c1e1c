"""The scikit-learn model: a ``Pipeline`` of the scaler and ``LogisticRegression``, saved with pickle.

The scaler is a step of the model, fitted on the training rows by ``fit``, so the saved model (and the
one logged to MLflow) takes raw pixels, exactly what a user has in hand.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from digitflow.core.io import atomic_path
from digitflow.core.params import TrainSklearnParams

CLASSIFIER_STEP = "logreg"
# Fixed, so that a newer Python default does not change the bytes of an unchanged model.
PICKLE_PROTOCOL = 5


def build_model(params: TrainSklearnParams, seed: int = 0) -> Pipeline:
    """An unfitted ``scaler -> LogisticRegression`` pipeline; ``scaling: none`` passes pixels through."""
    scalers: dict[str, Any] = {"standard": StandardScaler(), "minmax": MinMaxScaler(), "none": "passthrough"}
    classifier = LogisticRegression(
        C=params.C,
        solver=params.solver,
        max_iter=params.max_iter,
        tol=params.tol,
        class_weight=params.class_weight,
        random_state=seed,
    )
    return Pipeline([("scaler", scalers[params.scaling]), (CLASSIFIER_STEP, classifier)])


def classifier(model: Pipeline) -> LogisticRegression:
    return model.named_steps[CLASSIFIER_STEP]


def model_bytes(model: Pipeline) -> bytes:
    """The model as pickle bytes: equal models give equal bytes (pickle records values, not object ids).

    Pickle, like MLflow's ``serialization_format="pickle"`` for the logged copy, rather than skops: skops'
    import lists every scikit-learn estimator, importing all of scikit-learn and PyTorch (5-7 s in each
    stage that saves or loads the model, against 0.01 s of fitting on digits). As with any pickle, load
    only models your own pipeline or team made (see the README, "Using the model").
    """
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


def save_model(model: Pipeline, path: Path) -> None:
    data = model_bytes(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_model(path: Path) -> Pipeline:
    """Load a model saved by ``save_model``; anything else than a ``Pipeline`` is refused."""
    with path.open("rb") as file:
        model = pickle.load(file)
    if not isinstance(model, Pipeline):
        raise TypeError(f"expected a scikit-learn Pipeline, found {type(model).__name__}")
    return model


def coefficients(model: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Weights per class and pixel (on the scaled pixels) and intercepts, for the report's images."""
    fitted = classifier(model)
    return np.asarray(fitted.coef_, dtype=np.float32), np.asarray(fitted.intercept_, dtype=np.float32)

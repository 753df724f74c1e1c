"""The scikit-learn model: a ``Pipeline`` of the scaler and ``LogisticRegression``, saved without pickle.

The scaler is a step of the model, fitted on the training rows by ``fit``, so the saved model (and the
one logged to MLflow) takes raw pixels, exactly what a user has in hand.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from digitflow.io import atomic_path
from digitflow.params import TrainSklearnParams

CLASSIFIER_STEP = "logreg"


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


def _renumber_ids(node: Any, ids: dict[int, int]) -> Any:
    """Replace skops' ``__id__`` values (Python object ids, new in every process) by a counter.

    Arrays are stored as ``<id>.npy`` members named in the ``file`` field, so those names follow.
    """
    if isinstance(node, dict):
        renumbered = {}
        for key, value in node.items():
            if key == "__id__":
                renumbered[key] = ids.setdefault(value, len(ids))
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                renumbered[key] = f"{ids.setdefault(int(value.removesuffix('.npy')), len(ids))}.npy"
            else:
                renumbered[key] = _renumber_ids(value, ids)
        return renumbered
    if isinstance(node, list):
        return [_renumber_ids(value, ids) for value in node]
    return node


def deterministic_skops_bytes(model: Any) -> bytes:
    """``skops.io.dumps`` with stable object ids and zip timestamps, so equal models give equal bytes.

    skops records ``id()`` of each object so that shared references load as one object, and names
    array members after those ids; the numbers only have to agree within the file, so they are
    renumbered in order of first appearance. Members get a fixed timestamp, as in reproducible builds.
    """
    import skops.io

    source = zipfile.ZipFile(io.BytesIO(skops.io.dumps(model)))
    ids: dict[int, int] = {}
    schema = _renumber_ids(json.loads(source.read("schema.json")), ids)
    members = {"schema.json": json.dumps(schema, indent=2).encode()}
    for name in source.namelist():
        if name.endswith(".npy"):
            members[f"{ids[int(name.removesuffix('.npy'))]}.npy"] = source.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name in sorted(members):
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), members[name])
    return out.getvalue()


def save_model(model: Pipeline, path: Path) -> None:
    data = deterministic_skops_bytes(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_model(path: Path) -> Pipeline:
    """Load a model saved by ``save_model``; refuse any type skops does not trust by default."""
    import skops.io

    return skops.io.load(path)


def coefficients(model: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Weights per class and pixel (on the scaled pixels) and intercepts, for the report's images."""
    fitted = classifier(model)
    return np.asarray(fitted.coef_, dtype=np.float32), np.asarray(fitted.intercept_, dtype=np.float32)

"""The scikit-learn model: a ``Pipeline`` of the scaler and ``LogisticRegression``, saved as numbers only.

The scaler is a step of the model, fitted on the training rows by ``fit``, so the saved model (and the
one logged to MLflow) takes raw pixels, exactly what a user has in hand.

``models/sklearn/model.npz`` holds no code and no object: the pipeline's settings as JSON and each step's
fitted arrays (``coef_``, ``mean_``, ...), rebuilt on load by ``build_model`` and the arrays set back.
NumPy reads it with ``allow_pickle=False``, so a file planted in its place (a pickle that runs a program
when unpickled) is refused as damaged, and loading imports only the three estimators, a tenth of a second
where skops' import costs seconds (docs/models.md, "Model format and trust"). The copy logged to MLflow is
the same file, loaded by ``sklearn_pyfunc``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from digitflow.core.io import atomic_path, write_npz
from digitflow.core.params import TrainSklearnParams

CLASSIFIER_STEP = "logreg"
SCALER_STEP = "scaler"
FORMAT = "digitflow-sklearn-arrays/1"
HEADER = "header"
SCALERS: dict[str, Any] = {"standard": StandardScaler, "minmax": MinMaxScaler}


def build_model(params: TrainSklearnParams, seed: int = 0) -> Pipeline:
    """An unfitted ``scaler -> LogisticRegression`` pipeline; ``scaling: none`` passes pixels through."""
    scaler = SCALERS[params.scaling]() if params.scaling in SCALERS else "passthrough"
    classifier = LogisticRegression(
        C=params.C,
        solver=params.solver,
        max_iter=params.max_iter,
        tol=params.tol,
        class_weight=params.class_weight,
        random_state=seed,
    )
    return Pipeline([(SCALER_STEP, scaler), (CLASSIFIER_STEP, classifier)])


def classifier(model: Pipeline) -> LogisticRegression:
    return model.named_steps[CLASSIFIER_STEP]


def _settings(model: Pipeline) -> dict[str, Any]:
    """What ``build_model`` needs to make this pipeline again: its params and seed."""
    scaler = model.named_steps[SCALER_STEP]
    scaling = next((name for name, kind in SCALERS.items() if type(scaler) is kind), "none")
    given = classifier(model).get_params()
    params = {"scaling": scaling, **{key: given[key] for key in ("C", "solver", "max_iter", "tol", "class_weight")}}
    return {"params": TrainSklearnParams(**params).model_dump(), "seed": given["random_state"]}


def _fitted_arrays(model: Pipeline) -> dict[str, np.ndarray]:
    """Every fitted attribute (``name_``) of every step, as a numeric array, under ``step.name_``."""
    arrays = {}
    for step, estimator in model.steps:
        if estimator == "passthrough":
            continue
        for name, value in sorted(vars(estimator).items()):
            if name.endswith("_") and not name.startswith("_"):
                array = np.asarray(value)
                if array.dtype.kind not in "biuf":
                    raise TypeError(f"{step}.{name} is {array.dtype}, not numbers: it cannot be saved without pickle")
                arrays[f"{step}.{name}"] = array
    return arrays


def model_bytes(model: Pipeline) -> bytes:
    """The model as an ``.npz`` of its settings (JSON, as bytes) and fitted arrays: equal models give equal
    bytes (sorted names, fixed zip timestamps, no object ids)."""
    header = json.dumps({"format": FORMAT, **_settings(model)}, sort_keys=True).encode()
    buffer = io.BytesIO()
    write_npz(buffer, {HEADER: np.frombuffer(header, dtype=np.uint8), **_fitted_arrays(model)})
    return buffer.getvalue()


def save_model(model: Pipeline, path: Path) -> None:
    data = model_bytes(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_model(path: Path) -> Pipeline:
    """Rebuild a model saved by ``save_model``. Nothing in the file is executed or unpickled: a file that is
    not such an ``.npz`` (a pickle, an object array, another format) raises ``ValueError``."""
    with np.load(path, allow_pickle=False) as data:
        if HEADER not in data.files:
            raise ValueError(f"not a digitflow scikit-learn model (no {HEADER!r} record)")
        header = json.loads(data[HEADER].tobytes())
        if header.get("format") != FORMAT:
            raise ValueError(f"model format {header.get('format')!r}, expected {FORMAT!r}")
        model = build_model(TrainSklearnParams.model_validate(header["params"]), seed=int(header["seed"]))
        for key in data.files:
            if key == HEADER:
                continue
            step, _, name = key.partition(".")
            estimator = model.named_steps.get(step)
            if estimator in (None, "passthrough") or not name.endswith("_") or not name[:-1].isidentifier():
                raise ValueError(f"unexpected record {key!r}")
            value = data[key]
            setattr(estimator, name, value[()] if value.ndim == 0 else value)
    return model


def coefficients(model: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Weights per class and pixel (on the scaled pixels) and intercepts, for the report's images."""
    fitted = classifier(model)
    return np.asarray(fitted.coef_, dtype=np.float32), np.asarray(fitted.intercept_, dtype=np.float32)

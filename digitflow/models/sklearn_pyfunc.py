"""The scikit-learn model as MLflow loads it: the loader module named in the logged model's ``MLmodel``.

The copy logged to MLflow is the very ``model.npz`` of ``models/sklearn`` (numbers only, see
``sklearn_model``), under MLflow's ``python_function`` flavor with this module as its loader, rather than
the ``sklearn`` flavor, whose formats are pickle, cloudpickle or skops: a pickle runs code when loaded,
skops' import costs seconds (it imports every scikit-learn estimator, and PyTorch), and MLflow 3.17 refuses
all three when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is false. So ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` read it with pickle refused, where this package is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from digitflow.models.sklearn_model import load_model

LOADER_MODULE = __name__


class ProbabilityPredictor:
    """What ``mlflow.pyfunc`` calls: raw-pixel rows in, class probabilities out (``predict_proba``)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.pipeline.predict_proba(np.asarray(data, dtype=np.float32))


def _load_pyfunc(data_path: str) -> ProbabilityPredictor:
    """MLflow's entry point: ``data_path`` is the logged ``model.npz``."""
    return ProbabilityPredictor(load_model(Path(data_path)))

"""The scikit-learn model's copy in MLflow: the very file of ``models/sklearn`` (numbers only), under the
``python_function`` flavor with ``digitflow.models.sklearn_pyfunc`` as its loader (why: that module).

A module of its own so that only ``train_sklearn`` depends on the scikit-learn model's code (DVC re-runs a
stage when a module it can import changes; ``training_log`` is ``train_torch``'s too).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.data.datasets import DatasetMeta
from digitflow.models.sklearn_model import save_model
from digitflow.models.sklearn_pyfunc import LOADER_MODULE
from digitflow.tracking.training_log import model_log_args


def log_sklearn_model(model: Any, meta: DatasetMeta, example: np.ndarray) -> Any:
    """Log the fitted pipeline to the active run as ``model``; MLflow's ``ModelInfo``."""
    import mlflow
    import sklearn

    with tempfile.TemporaryDirectory(prefix="digitflow-sklearn-") as folder:
        data = Path(folder) / "model.npz"
        save_model(model, data)
        return mlflow.pyfunc.log_model(
            loader_module=LOADER_MODULE,
            data_path=str(data),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"],
            **model_log_args(meta, example, model.predict_proba(example)),
        )

"""What both training stages log to MLflow, so their runs hold the same names side by side."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from digitflow.data import CLASS_NAMES, DatasetMeta
from digitflow.figures import confusion_heatmap
from digitflow.metrics import confusion, summary_metrics
from digitflow.params import Params
from digitflow.report import MODEL_TITLES


def run_params(params: Params, stage: str, meta: DatasetMeta) -> dict[str, Any]:
    """The stage's own params plus what defines its data: dataset, scaling and split."""
    logged: dict[str, Any] = dict(getattr(params, stage).model_dump())
    logged.update(dataset=meta.dataset, scaling=meta.scaling, image_shape="x".join(map(str, meta.image_shape)))
    logged.update({f"split_{key}": value for key, value in params.split.model_dump().items()})
    return logged


def fit_metrics(
    train_labels: np.ndarray, train_proba: np.ndarray, val_labels: np.ndarray, val_proba: np.ndarray
) -> dict[str, float]:
    return {**summary_metrics(train_labels, train_proba, "train_"), **summary_metrics(val_labels, val_proba, "val_")}


def log_confusion_matrix(labels: np.ndarray, predicted: np.ndarray, part: str, model_name: str) -> np.ndarray:
    """Log the confusion matrix of one part of the split as JSON and as a heatmap to the active run."""
    import mlflow

    matrix = confusion(labels, predicted)
    mlflow.log_dict(
        {"labels": list(CLASS_NAMES), "rows": "actual", "columns": "predicted", "matrix": matrix.tolist()},
        f"{part}_confusion_matrix.json",
    )
    figure = confusion_heatmap(matrix, CLASS_NAMES, f"{MODEL_TITLES.get(model_name, model_name)}: {part} set")
    mlflow.log_figure(figure, f"{part}_confusion_matrix.png")
    return matrix


# Timings vary from run to run; they are logged to MLflow but kept out of the committed metric files,
# which must be byte-identical for the same params and seed.
TIMING_KEYS = frozenset({"fit_seconds"})


def dvc_metrics(metrics: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What a training stage writes to its DVC metrics file: the results, and the MLflow run that has
    the rest (the run id is the one field that differs between two runs of the same params)."""
    return {**{key: value for key, value in metrics.items() if key not in TIMING_KEYS}, "mlflow_run_id": run_id}


def run_name(model_name: str, dataset: str) -> str:
    """``torch-mnist``, or ``torch-<experiment>`` when DVC runs the stage as an experiment."""
    return f"{model_name}-{os.environ.get('DVC_EXP_NAME') or dataset}"

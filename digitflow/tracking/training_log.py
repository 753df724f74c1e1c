"""The MLflow half of training: what both training stages log (params, fit metrics, confusion matrices,
datasets, the model with its signature and card), under the same names, so their runs sit side by side."""

from __future__ import annotations

from typing import Any

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import read
from digitflow.core.io import read_json
from digitflow.core.names import model_title
from digitflow.core.params import Params
from digitflow.data.datasets import DatasetMeta
from digitflow.evaluation.figures import confusion_heatmap
from digitflow.evaluation.metrics import confusion, confusion_record, summary_metrics
from digitflow.models.card import model_card


def run_params(params: Params, stage: str, meta: DatasetMeta) -> dict[str, Any]:
    """The stage's own params plus what defines its data: dataset, image shape and split."""
    logged: dict[str, Any] = dict(getattr(params, stage).model_dump())
    logged.update(dataset=meta.dataset, image_shape="x".join(map(str, meta.image_shape)))
    logged.update({f"split_{key}": value for key, value in params.split.model_dump().items()})
    return logged


def fit_metrics(
    train_labels: np.ndarray, train_proba: np.ndarray, val_labels: np.ndarray, val_proba: np.ndarray
) -> dict[str, float]:
    return {**summary_metrics(train_labels, train_proba, "train_"), **summary_metrics(val_labels, val_proba, "val_")}


def log_confusion_matrix(
    labels: np.ndarray, predicted: np.ndarray, part: str, model_name: str, class_names: tuple[str, ...]
) -> np.ndarray:
    """Log the confusion matrix of one part of the split as JSON and as a heatmap to the active run."""
    import mlflow

    matrix = confusion(labels, predicted, len(class_names))
    mlflow.log_dict(confusion_record(matrix, class_names), f"{part}_confusion_matrix.json")
    figure = confusion_heatmap(matrix, class_names, f"{model_title(model_name)}: {part} set")
    mlflow.log_figure(figure, f"{part}_confusion_matrix.png")
    return matrix


def dataset_input(features: np.ndarray, labels: np.ndarray, dataset: str, part: str) -> Any:
    """An MLflow dataset for one part of the split; its digest identifies the exact images."""
    import mlflow.data

    return mlflow.data.from_numpy(np.asarray(features), targets=np.asarray(labels), name=f"{dataset}-{part}")


def log_training_inputs(dataset: str, train: Any, val: Any) -> None:
    """The training and validation images as inputs of the active run ("Datasets used" in the UI), and
    what the data checks found about them (``data_check.json``, from the check stage)."""
    import mlflow

    mlflow.log_input(dataset_input(train.features, train.labels, dataset, "train"), context="training")
    mlflow.log_input(dataset_input(val.features, val.labels, dataset, "val"), context="validation")
    mlflow.log_dict(read(paths.DATA_CHECK_FILE, read_json), paths.DATA_CHECK_FILE.name)


def model_log_args(meta: DatasetMeta, example: np.ndarray, example_proba: np.ndarray) -> dict:
    """Arguments shared by both flavours' ``log_model``: raw-pixel signature, example, card. Registering
    is a step of its own (``model_files.register_logged_model``), which may be off or refused.

    The signature is written from the contract (float32 pixel rows in, ``(n, n_classes)`` probabilities
    out, in the dtype the model returns) rather than inferred, and checked against the example's
    prediction; the card in the metadata names the classes, in the order of the columns.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    if example_proba.shape != (len(example), meta.n_classes):
        raise ValueError(
            f"expected probabilities of shape ({len(example)}, {meta.n_classes}), got {example_proba.shape}"
        )
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, example.shape[1]))]),
        outputs=Schema([TensorSpec(example_proba.dtype, (-1, meta.n_classes))]),
    )
    return {
        "name": "model",
        "signature": signature,
        "input_example": example,
        "metadata": model_card(meta),
    }

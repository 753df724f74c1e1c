"""What both training stages log to MLflow, so their runs hold the same names side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitflow import paths
from digitflow.data import CLASS_NAMES, N_CLASSES, DatasetMeta
from digitflow.figures import confusion_heatmap
from digitflow.io import atomic_dir, save_arrays, write_json
from digitflow.metrics import confusion, summary_metrics
from digitflow.params import Params
from digitflow.report import MODEL_TITLES
from digitflow.tracking import RunInfo, tracking_uri

# Names in MLflow's model registry, one registered model per trainer.
REGISTERED_MODELS = {"sklearn": "digitflow-sklearn", "torch": "digitflow-torch"}


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


def dataset_input(features: np.ndarray, labels: np.ndarray, dataset: str, part: str) -> Any:
    """An MLflow dataset for one part of the split; its digest identifies the exact images."""
    import mlflow.data

    return mlflow.data.from_numpy(np.asarray(features), targets=np.asarray(labels), name=f"{dataset}-{part}")


def log_training_inputs(dataset: str, train: Any, val: Any) -> None:
    """The training and validation images as inputs of the active run ("Datasets used" in the UI)."""
    import mlflow

    mlflow.log_input(dataset_input(train.features, train.labels, dataset, "train"), context="training")
    mlflow.log_input(dataset_input(val.features, val.labels, dataset, "val"), context="validation")


def model_card(meta: DatasetMeta) -> dict[str, Any]:
    """What turns an image file into the model's input: saved beside the model and logged with it."""
    return {
        "dataset": meta.dataset,
        "image_shape": list(meta.image_shape),
        "pixel_max": meta.pixel_max,
        # How a picture is made into such an image (digitflow/image_recipes.py): `digitflow predict` follows it.
        "image_recipe": meta.image_recipe,
        "input": f"float32 (n, {meta.image_shape[0] * meta.image_shape[1]}) raw pixels 0..{meta.pixel_max}, ink high",
        "output": "float64 (n, 10) probabilities of the digits 0..9",
    }


def model_log_args(model_name: str, meta: DatasetMeta, example: np.ndarray, example_proba: np.ndarray) -> dict:
    """Arguments shared by both flavours' ``log_model``: raw-pixel signature, registry name, card.

    The signature is written from the contract (float32 pixel rows in, ``(n, 10)`` probabilities out,
    in the dtype the model returns) rather than inferred, and checked against the example's prediction.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    if example_proba.shape != (len(example), N_CLASSES):
        raise ValueError(f"expected probabilities of shape ({len(example)}, {N_CLASSES}), got {example_proba.shape}")
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, example.shape[1]))]),
        outputs=Schema([TensorSpec(example_proba.dtype, (-1, N_CLASSES))]),
    )
    return {
        "name": "model",
        "signature": signature,
        "input_example": example,
        "registered_model_name": REGISTERED_MODELS[model_name],
        "metadata": model_card(meta),
    }


def registered_run_info(run: Any, logged: Any, model_name: str) -> RunInfo:
    """The record of the run and the registry version that ``log_model`` created for a trainer."""
    return RunInfo(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        tracking_uri=tracking_uri(),
        registered_model=REGISTERED_MODELS[model_name],
        model_version=str(logged.registered_model_version),
    )


def write_model_dir(
    model_name: str, save: Callable[[Path], None], coefficients: tuple[np.ndarray, np.ndarray], meta: DatasetMeta
) -> None:
    """``models/<model>/``, all or nothing: the model file (``save(path)``), its coefficients for the
    report's images, and its model card."""
    coef, intercept = coefficients
    with atomic_dir(paths.model_dir(model_name)) as out:
        save(out / paths.model_file(model_name).name)
        save_arrays(out / paths.coef_file(model_name).name, coef=coef, intercept=intercept)
        write_json(out / paths.MODEL_CARD_NAME, model_card(meta))

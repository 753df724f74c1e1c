"""Stage train_torch: train the PyTorch logistic regression, log every epoch to MLflow, save the model."""

from __future__ import annotations

import logging
import time

import mlflow
import pandas as pd
import torch
from mlflow.models import infer_signature

from digitflow import paths
from digitflow.cli import run_stage
from digitflow.data import load_meta, load_split
from digitflow.io import atomic_dir, atomic_path, save_arrays
from digitflow.params import load_params
from digitflow.records import write_training_outputs, write_training_record
from digitflow.torch_model import coefficients, predict_proba, select_device, train_logistic_regression
from digitflow.tracking import RunInfo, log_step_metrics, tracking_uri, training_run
from digitflow.training import fit_metrics, log_confusion_matrix, run_name, run_params

log = logging.getLogger(__name__)
MODEL = "torch"


def main() -> None:
    params = load_params()
    meta = load_meta()
    train, val = load_split("train"), load_split("val")
    device = select_device()

    with training_run(params.tracking.experiment, "train_torch", meta.dataset, run_name(MODEL, meta.dataset)) as run:
        mlflow.log_params({**run_params(params, "train_torch", meta), "device": device.type})
        log.info("training on %s: %d images x %d features", device, *train.features.shape)
        started = time.perf_counter()
        result = train_logistic_regression(
            train.features, train.labels, val.features, val.labels, params.train_torch, device
        )
        train_seconds = time.perf_counter() - started
        model = result.model.cpu()
        log_step_metrics(run.info.run_id, result.history)
        metrics = fit_metrics(
            train.labels, predict_proba(model, train.features), val.labels, predict_proba(model, val.features)
        )
        metrics.update(fit_seconds=round(train_seconds, 4), epochs=len(result.history))
        mlflow.log_metrics(metrics)
        log_confusion_matrix(val.labels, predict_proba(model, val.features).argmax(axis=1), "val", MODEL)
        example = val.features[:5]
        mlflow.pytorch.log_model(
            model,
            name="model",
            signature=infer_signature(example, predict_proba(model, example)),
            input_example=example,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        info = RunInfo(run.info.run_id, run.info.experiment_id, tracking_uri())
        with atomic_dir(paths.TORCH_MODEL_DIR) as out:
            with atomic_path(out / paths.TORCH_MODEL_FILE.name) as tmp:
                torch.save(model.state_dict(), tmp)
            coef, intercept = coefficients(model)
            save_arrays(out / paths.TORCH_COEF_FILE.name, coef=coef, intercept=intercept)
            info.save(out / paths.RUN_INFO_NAME)
            write_training_record(out, MODEL, info.run_id, train_seconds, epochs=len(result.history))
        with atomic_path(paths.TORCH_HISTORY_FILE) as tmp:
            pd.DataFrame(result.history).to_csv(tmp, index=False, float_format="%.6f")
        write_training_outputs(MODEL, metrics)
    log.info("val accuracy %.4f in %.2f s (MLflow run %s)", metrics["val_accuracy"], train_seconds, info.run_id)


if __name__ == "__main__":
    run_stage("train_torch", main)

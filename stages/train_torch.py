"""Stage train_torch: train the PyTorch logistic regression (scaling inside the module), log every
epoch to MLflow, register the model, save it."""

from __future__ import annotations

import logging
import time
from functools import partial

from digitflow.core import paths
from digitflow.core.io import atomic_path
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_meta, load_split

log = logging.getLogger(__name__)
MODEL = "torch"


def main() -> None:
    params = load_params()
    meta = load_meta()
    train, val = load_split("train"), load_split("val")
    # Heavy imports only once the params and inputs are known to be good: mistakes show in a second.
    import mlflow
    import pandas as pd
    import torch
    import torch._dynamo  # the first optimizer imports it: start-up, not training time

    from digitflow.core.determinism import set_torch_threads
    from digitflow.core.io import write_json
    from digitflow.evaluation.metrics import reviewed_metrics
    from digitflow.models.folder import write_model_dir
    from digitflow.models.torch_model import (
        ProbabilityModel,
        coefficients,
        predict_proba,
        save_model,
        select_device,
        train_logistic_regression,
    )
    from digitflow.tracking.model_files import register_logged_model
    from digitflow.tracking.records import write_training_record
    from digitflow.tracking.runs import log_step_metrics, run_name_base, training_run
    from digitflow.tracking.training_log import (
        fit_metrics,
        log_confusion_matrix,
        log_training_inputs,
        model_log_args,
        run_params,
    )

    set_torch_threads(params.train_torch.threads)
    device = select_device()
    name = run_name_base(MODEL, meta.dataset)
    with training_run(params.tracking.experiment, "train_torch", meta.dataset, name, {"digitflow.model": MODEL}) as run:
        mlflow.log_params({**run_params(params, "train_torch", meta), "device": device.type})
        log_training_inputs(meta.dataset, train, val)
        log.info("training on %s: %d images x %d pixels", device, *train.features.shape)
        started = time.perf_counter()
        result = train_logistic_regression(
            train.features, train.labels, val.features, val.labels, params.train_torch, device, n_classes=meta.n_classes
        )
        train_seconds = time.perf_counter() - started
        model = result.model.cpu()
        log_step_metrics(run.info.run_id, result.history)
        val_proba = predict_proba(model, val.features)
        metrics = fit_metrics(train.labels, predict_proba(model, train.features), val.labels, val_proba)
        metrics.update(fit_seconds=round(train_seconds, 4), epochs=len(result.history))
        # Metrics the epochs already logged (train/val accuracy) are not logged again at another step.
        mlflow.log_metrics({key: value for key, value in metrics.items() if key not in result.history[-1]})
        log_confusion_matrix(val.labels, val_proba.argmax(axis=1), "val", MODEL, meta.class_names)
        example = val.features[:5]
        logged = mlflow.pytorch.log_model(
            ProbabilityModel(model),
            serialization_format="pt2",  # checked by torch's restricted unpickler on load (docs/models.md)
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            **model_log_args(meta, example, predict_proba(model, example)),
        )
        info = register_logged_model(run, logged, MODEL)
        write_model_dir(MODEL, partial(save_model, model), coefficients(model), meta)
        write_training_record(MODEL, info, train_seconds, epochs=len(result.history))
        with atomic_path(paths.TORCH_HISTORY_FILE) as tmp:
            pd.DataFrame(result.history).to_csv(tmp, index=False, float_format="%.6f")
        write_json(paths.train_metrics_file(MODEL), reviewed_metrics(metrics))
    log.info("val accuracy %.4f in %.2f s (MLflow run %s)", metrics["val_accuracy"], train_seconds, info.run_id)


if __name__ == "__main__":
    run_stage("train_torch", main)

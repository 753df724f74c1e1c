"""Stage train_sklearn: fit the scaler + LogisticRegression pipeline, log and register it, save it."""

from __future__ import annotations

import logging
import time
from functools import partial

from digitflow.core import paths
from digitflow.core.params import check_solver, load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_meta, load_split

log = logging.getLogger(__name__)
MODEL = "sklearn"


def main() -> None:
    params = load_params()
    meta = load_meta()
    check_solver(params.train_sklearn.solver, meta.class_names)  # liblinear: two classes only
    train, val = load_split("train"), load_split("val")
    # Heavy imports only once the params and inputs are known to be good: mistakes show in a second.
    import mlflow

    from digitflow.core.io import write_json
    from digitflow.evaluation.metrics import reviewed_metrics
    from digitflow.models.folder import write_model_dir
    from digitflow.models.sklearn_model import build_model, classifier, coefficients, save_model
    from digitflow.tracking.model_files import register_logged_model
    from digitflow.tracking.records import write_training_record
    from digitflow.tracking.runs import run_name_base, training_run
    from digitflow.tracking.sklearn_copy import log_sklearn_model
    from digitflow.tracking.training_log import (
        fit_metrics,
        log_confusion_matrix,
        log_training_inputs,
        run_params,
    )

    name = run_name_base(MODEL, meta.dataset)
    with training_run(
        params.tracking.experiment, "train_sklearn", meta.dataset, name, {"digitflow.model": MODEL}
    ) as run:
        mlflow.log_params(run_params(params, "train_sklearn", meta))
        log_training_inputs(meta.dataset, train, val)
        model = build_model(params.train_sklearn, seed=params.split.seed)
        log.info(
            "fitting %s scaling + LogisticRegression on %d images x %d pixels",
            params.train_sklearn.scaling,
            *train.features.shape,
        )
        started = time.perf_counter()
        model.fit(train.features, train.labels)
        fit_seconds = time.perf_counter() - started
        val_proba = model.predict_proba(val.features)
        metrics = fit_metrics(train.labels, model.predict_proba(train.features), val.labels, val_proba)
        metrics.update(fit_seconds=round(fit_seconds, 4), n_iter=int(classifier(model).n_iter_.max()))
        mlflow.log_metrics(metrics)
        log_confusion_matrix(val.labels, val_proba.argmax(axis=1), "val", MODEL, meta.class_names)
        logged = log_sklearn_model(model, meta, val.features[:5])  # models/'s own file (sklearn_pyfunc.py)
        info = register_logged_model(run, logged, MODEL)
        write_model_dir(MODEL, partial(save_model, model), coefficients(model), meta)
        write_training_record(MODEL, info, fit_seconds, n_iter=metrics["n_iter"])
        write_json(paths.train_metrics_file(MODEL), reviewed_metrics(metrics))
    log.info("val accuracy %.4f in %.2f s (MLflow run %s)", metrics["val_accuracy"], fit_seconds, info.run_id)


if __name__ == "__main__":
    run_stage("train_sklearn", main)

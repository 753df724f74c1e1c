"""Stage train_sklearn: fit scikit-learn's LogisticRegression, log the run to MLflow, save the model."""

from __future__ import annotations

import logging
import time

import mlflow
import sklearn
from mlflow.models import infer_signature

from digitflow import paths
from digitflow.cli import run_stage
from digitflow.data import load_meta, load_split
from digitflow.io import atomic_dir, save_arrays
from digitflow.params import load_params
from digitflow.records import write_training_outputs, write_training_record
from digitflow.sklearn_model import build_model, coefficients, save_model
from digitflow.tracking import RunInfo, tracking_uri, training_run
from digitflow.training import fit_metrics, log_confusion_matrix, run_name, run_params

log = logging.getLogger(__name__)
MODEL = "sklearn"


def main() -> None:
    params = load_params()
    meta = load_meta()
    train, val = load_split("train"), load_split("val")

    with training_run(params.tracking.experiment, "train_sklearn", meta.dataset, run_name(MODEL, meta.dataset)) as run:
        mlflow.log_params(run_params(params, "train_sklearn", meta))
        model = build_model(params.train_sklearn, seed=params.split.seed)
        log.info("fitting LogisticRegression on %d images x %d features", *train.features.shape)
        started = time.perf_counter()
        model.fit(train.features, train.labels)
        fit_seconds = time.perf_counter() - started
        metrics = fit_metrics(
            train.labels, model.predict_proba(train.features), val.labels, model.predict_proba(val.features)
        )
        metrics.update(fit_seconds=round(fit_seconds, 4), n_iter=int(model.n_iter_.max()))
        mlflow.log_metrics(metrics)
        log_confusion_matrix(val.labels, model.predict(val.features), "val", MODEL)
        example = val.features[:5]
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
        info = RunInfo(run.info.run_id, run.info.experiment_id, tracking_uri())
        with atomic_dir(paths.SKLEARN_MODEL_DIR) as out:
            save_model(model, out / paths.SKLEARN_MODEL_FILE.name)
            coef, intercept = coefficients(model)
            save_arrays(out / paths.SKLEARN_COEF_FILE.name, coef=coef, intercept=intercept)
            info.save(out / paths.RUN_INFO_NAME)
            write_training_record(out, MODEL, info.run_id, fit_seconds, n_iter=metrics["n_iter"])
        write_training_outputs(MODEL, metrics)
    log.info("val accuracy %.4f in %.2f s (MLflow run %s)", metrics["val_accuracy"], fit_seconds, info.run_id)


if __name__ == "__main__":
    run_stage("train_sklearn", main)

"""Stage evaluate: both models on the test set; metrics to DVC and into each model's MLflow run."""

from __future__ import annotations

import logging

import numpy as np

from digitflow.core import paths
from digitflow.core.io import atomic_dir, atomic_path, save_figure, write_json, write_text
from digitflow.core.names import MODEL_NAMES, model_title
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_meta, load_split

log = logging.getLogger(__name__)


def predict_test_proba(model: str, features: np.ndarray) -> np.ndarray:
    """Probabilities from the saved model itself, given raw pixels, as a user of the model would."""
    from digitflow.models.predict import local_predictor

    predictor, _card = local_predictor(model)
    return predictor(features)


def main() -> None:
    params = load_params()
    # Heavy imports only once the params are known to be valid: a typo is reported in a second.
    import mlflow

    from digitflow.evaluation.evaluate import evaluate_model, evaluation_log
    from digitflow.evaluation.figures import confusion_heatmap
    from digitflow.evaluation.metrics import confusion_record, per_class_metrics
    from digitflow.evaluation.workbook import write_workbook
    from digitflow.tracking.evaluation_runs import TestResults, log_test_results, target_run
    from digitflow.tracking.faults import store_errors
    from digitflow.tracking.records import read_run_info
    from digitflow.tracking.registry import record_test_metrics
    from digitflow.tracking.store import tracking_uri
    from digitflow.tracking.training_log import dataset_input

    meta = load_meta()
    test = load_split("test")
    evaluations = [
        evaluate_model(m, test.labels, predict_test_proba(m, test.features), meta.class_names) for m in MODEL_NAMES
    ]

    client = mlflow.MlflowClient(tracking_uri())
    test_set = dataset_input(test.features, test.labels, meta.dataset, "test")
    with atomic_dir(paths.EVALUATION_DIR) as out:
        for evaluation in evaluations:
            name = evaluation.model
            heatmap = confusion_heatmap(evaluation.confusion, meta.class_names, f"{model_title(name)}: test set")
            png = out / paths.confusion_png(name).name
            save_figure(heatmap, png)
            record = confusion_record(evaluation.confusion, meta.class_names)
            write_json(out / paths.confusion_json(name).name, record)
            evaluation.predictions.to_csv(out / paths.predictions_csv(name).name, float_format="%.6f")
            evaluation.per_class.to_csv(out / f"classification_report_{name}.csv", float_format="%.6f")
            info = read_run_info(name)
            results = TestResults(
                name,
                meta.dataset,
                test_set,
                evaluation.metrics,
                record,
                png,
                evaluation.per_class,
                per_class_metrics(evaluation.per_class, meta.class_names),
            )
            with store_errors(client.tracking_uri, f"logging {name}'s test results; no output was written"):
                target = target_run(client, info, params.tracking.experiment, name, meta.dataset)
                log_test_results(client, target, results)
                record_test_metrics(client, info, evaluation.metrics)
        write_text(out / paths.EVALUATION_LOG_FILE.name, evaluation_log(evaluations, meta.dataset))
        with atomic_path(out / paths.EVALUATION_WORKBOOK_FILE.name) as tmp:
            write_workbook(tmp, evaluations)

    for evaluation in evaluations:
        with atomic_path(paths.confusion_csv(evaluation.model)) as tmp:
            evaluation.predictions[["actual", "predicted"]].to_csv(tmp, index=False)
    write_json(paths.EVALUATE_METRICS_FILE, {e.model: e.metrics for e in evaluations})
    for evaluation in evaluations:
        log.info(
            "%s: test accuracy %.4f, log loss %.4f",
            evaluation.model,
            evaluation.metrics["test_accuracy"],
            evaluation.metrics["test_log_loss"],
        )


if __name__ == "__main__":
    run_stage("evaluate", main)

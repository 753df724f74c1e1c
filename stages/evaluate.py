"""Stage evaluate: both models on the test set; metrics to DVC and into each model's MLflow run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from digitflow import paths
from digitflow.artifacts import read
from digitflow.cli import run_stage
from digitflow.data import CLASS_NAMES, load_meta, load_split
from digitflow.io import atomic_dir, atomic_path, save_figure, write_json, write_text
from digitflow.params import load_params

if TYPE_CHECKING:
    from digitflow.evaluation import ModelEvaluation

log = logging.getLogger(__name__)


def predict_test_proba(model: str, features: np.ndarray) -> np.ndarray:
    if model == "sklearn":
        from digitflow.sklearn_model import load_model

        return read(paths.SKLEARN_MODEL_FILE, load_model).predict_proba(features)
    from digitflow.torch_model import load_model, predict_proba

    return predict_proba(read(paths.TORCH_MODEL_FILE, load_model, features.shape[1]), features)


def confusion_json(evaluation: ModelEvaluation) -> dict:
    return {
        "labels": list(CLASS_NAMES),
        "rows": "actual",
        "columns": "predicted",
        "matrix": evaluation.confusion.tolist(),
    }


def main() -> None:
    params = load_params()
    # Heavy imports only once the params are known to be valid: a typo is reported in a second.
    import mlflow

    from digitflow.evaluation import evaluate_model, evaluation_log, write_workbook
    from digitflow.figures import confusion_heatmap
    from digitflow.report import MODEL_TITLES
    from digitflow.tracking import RunInfo, resumed_run

    meta = load_meta()
    test = load_split("test")
    evaluations = [evaluate_model(m, test.labels, predict_test_proba(m, test.features)) for m in paths.MODEL_NAMES]

    with atomic_dir(paths.EVALUATION_DIR) as out:
        for evaluation in evaluations:
            name = evaluation.model
            heatmap = confusion_heatmap(evaluation.confusion, CLASS_NAMES, f"{MODEL_TITLES[name]}: test set")
            save_figure(heatmap, out / paths.confusion_png(name).name)
            write_json(out / paths.confusion_json(name).name, confusion_json(evaluation))
            evaluation.predictions.to_csv(out / paths.predictions_csv(name).name, float_format="%.6f")
            evaluation.per_class.to_csv(out / f"classification_report_{name}.csv", float_format="%.6f")
            with resumed_run(RunInfo.load(paths.run_info_file(name)), params.tracking.experiment, "evaluate"):
                mlflow.log_metrics(evaluation.metrics)
                mlflow.log_dict(confusion_json(evaluation), "test_confusion_matrix.json")
                mlflow.log_figure(heatmap, "test_confusion_matrix.png")
                mlflow.log_table(evaluation.per_class.reset_index(), "test_classification_report.json")
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

"""Evaluation of both models on the same test set, and its plain-text log (the workbook: ``workbook``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from digitflow.evaluation.metrics import confusion, per_class_report, predictions_table, summary_metrics


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything measured for one model on the test set."""

    model: str
    metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: np.ndarray
    predictions: pd.DataFrame


def evaluate_model(model: str, labels: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> ModelEvaluation:
    predicted = proba.argmax(axis=1)
    return ModelEvaluation(
        model=model,
        metrics=summary_metrics(labels, proba, "test_"),
        per_class=per_class_report(labels, predicted, class_names),
        confusion=confusion(labels, predicted, len(class_names)),
        predictions=predictions_table(labels, proba, class_names),
    )


def confusion_frame(evaluation: ModelEvaluation) -> pd.DataFrame:
    """The confusion matrix with the class names on both axes (rows actual, columns predicted)."""
    names = [name for name in evaluation.per_class.index if name not in ("accuracy", "macro avg", "weighted avg")]
    return pd.DataFrame(evaluation.confusion, index=names, columns=names)


def metrics_by_model(evaluations: list[ModelEvaluation]) -> pd.DataFrame:
    """One column per model, one row per test metric."""
    return pd.DataFrame({e.model: e.metrics for e in evaluations})


def evaluation_log(evaluations: list[ModelEvaluation], dataset: str) -> str:
    """A plain-text account of the evaluation, readable in a terminal or a CI log."""
    n_test = len(evaluations[0].predictions) if evaluations else 0
    lines = [f"Evaluation on the {dataset} test set ({n_test} images)", "", "Comparison:"]
    lines += [metrics_by_model(evaluations).to_string(float_format=lambda v: f"{v:.4f}"), ""]
    for evaluation in evaluations:
        lines += [f"== {evaluation.model} ==", "Per-class report:"]
        lines += [evaluation.per_class.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""), ""]
        lines += ["Confusion matrix (rows: actual, columns: predicted):"]
        lines += [confusion_frame(evaluation).to_string(), ""]
    return "\n".join(lines)

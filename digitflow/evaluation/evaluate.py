"""Evaluation of both models on the same test set, and its log as text and as an Excel workbook."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from digitflow.evaluation.metrics import confusion, per_class_report, predictions_table, summary_metrics
from digitflow.evaluation.workbook import INTEGER, finish, reproducible_zip, write_frame


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything measured for one model on the test set."""

    model: str
    metrics: dict[str, float]
    per_class: pd.DataFrame
    confusion: np.ndarray
    predictions: pd.DataFrame


def evaluate_model(model: str, labels: np.ndarray, proba: np.ndarray) -> ModelEvaluation:
    predicted = proba.argmax(axis=1)
    return ModelEvaluation(
        model=model,
        metrics=summary_metrics(labels, proba, "test_"),
        per_class=per_class_report(labels, predicted),
        confusion=confusion(labels, predicted),
        predictions=predictions_table(labels, proba),
    )


def comparison_table(evaluations: list[ModelEvaluation]) -> pd.DataFrame:
    """One column per model, one row per test metric."""
    return pd.DataFrame({e.model: e.metrics for e in evaluations})


def evaluation_log(evaluations: list[ModelEvaluation], dataset: str) -> str:
    """A plain-text account of the evaluation, readable in a terminal or a CI log."""
    n_test = len(evaluations[0].predictions) if evaluations else 0
    lines = [f"Evaluation on the {dataset} test set ({n_test} images)", "", "Comparison:"]
    lines += [comparison_table(evaluations).to_string(float_format=lambda v: f"{v:.4f}"), ""]
    for evaluation in evaluations:
        lines += [f"== {evaluation.model} ==", "Per-class report:"]
        lines += [evaluation.per_class.to_string(float_format=lambda v: f"{v:.4f}", na_rep=""), ""]
        lines += ["Confusion matrix (rows: actual, columns: predicted):"]
        lines += [pd.DataFrame(evaluation.confusion).to_string(), ""]
    return "\n".join(lines)


def predictions_sheet(evaluation: ModelEvaluation) -> pd.DataFrame:
    """One row per test image: its index in the test set, actual and predicted digit, and the
    probability the model gave its prediction."""
    table = evaluation.predictions
    probability = table.filter(like="prob_").to_numpy().max(axis=1)
    return table[["actual", "predicted"]].assign(probability=probability)


def write_workbook(path: Path, evaluations: list[ModelEvaluation]) -> None:
    """A comparison sheet; a sheet per model with its metrics, per-class report and confusion matrix;
    then a sheet per model with its per-image predictions. Same results, same bytes."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        write_frame(writer, comparison_table(evaluations), "comparison", index_label="metric")
        for evaluation in evaluations:
            sheet = evaluation.model
            metrics = pd.Series(evaluation.metrics, name="value").to_frame()
            write_frame(writer, metrics, sheet, index_label="metric")
            start = len(metrics) + 2
            write_frame(writer, evaluation.per_class, sheet, startrow=start, formats={"support": INTEGER})
            start += len(evaluation.per_class) + 2
            matrix = pd.DataFrame(evaluation.confusion)
            matrix.index.name = "actual \\ predicted"
            write_frame(writer, matrix, sheet, startrow=start)
        for evaluation in evaluations:
            write_frame(writer, predictions_sheet(evaluation), f"{evaluation.model} predictions", index_label="index")
        finish(writer)
    reproducible_zip(path)

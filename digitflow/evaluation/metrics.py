"""Classification metrics shared by both models, so their numbers mean the same thing.

Labels are class indices 0..n-1 (probability column i is class i); tables and records name the classes
by ``class_names``, the dataset's own (``'0'``..``'9'`` for digits and MNIST, a folder's subfolders)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

# Train and validation metrics a training stage keeps in its committed metrics file (what `dvc metrics
# diff` shows a reviewer); everything else a run measures is in its MLflow run.
REVIEWED = ("accuracy", "log_loss")


def reviewed_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``train_accuracy``, ``train_log_loss``, ``val_accuracy``, ``val_log_loss`` of ``metrics``."""
    names = [f"{part}_{name}" for part in ("train", "val") for name in REVIEWED]
    return {name: metrics[name] for name in names if name in metrics}


def check_probabilities(proba: np.ndarray, n_rows: int, n_classes: int | None = None) -> None:
    """``proba`` holds one row per image and, if ``n_classes`` is given, one column per class."""
    if proba.ndim != 2 or proba.shape[0] != n_rows or (n_classes is not None and proba.shape[1] != n_classes):
        classes = n_classes if n_classes is not None else "n_classes"
        raise ValueError(f"expected probabilities shaped ({n_rows}, {classes}), got {proba.shape}")


def summary_metrics(y_true: np.ndarray, proba: np.ndarray, prefix: str = "test_") -> dict[str, float]:
    """Accuracy, log loss and macro precision / recall / F1, under names both trainers share; the classes
    are the probability columns."""
    check_probabilities(proba, len(y_true))
    labels = list(range(proba.shape[1]))
    predicted = proba.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, labels=labels, average="macro", zero_division=0
    )
    values = {
        "accuracy": accuracy_score(y_true, predicted),
        "log_loss": log_loss(y_true, proba, labels=labels),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }
    return {f"{prefix}{name}": round(float(value), 6) for name, value in values.items()}


def per_class_report(y_true: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per class, by name, plus the averages."""
    report = classification_report(
        y_true,
        predicted,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        output_dict=True,
        zero_division=0,
    )
    accuracy = report.pop("accuracy")
    table = pd.DataFrame(report).T
    table.loc["accuracy"] = [np.nan, np.nan, accuracy, table.loc["macro avg", "support"]]
    table["support"] = table["support"].astype(int)
    table.index.name = "class"
    return table


def confusion(y_true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with actual classes as rows and predicted classes as columns."""
    return confusion_matrix(y_true, predicted, labels=list(range(n_classes)))


def confusion_record(matrix: np.ndarray, class_names: Sequence[str]) -> dict:
    """A confusion matrix as JSON: labels, which axis is which, the counts."""
    return {"labels": list(class_names), "rows": "actual", "columns": "predicted", "matrix": matrix.tolist()}


def predictions_table(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per test image: actual and predicted class by name, and each class's probability
    (``prob_<name>``). For digits and MNIST the names are the digits, so the file reads as it always did."""
    check_probabilities(proba, len(y_true), len(class_names))
    names = np.asarray(class_names, dtype=object)
    table = pd.DataFrame(proba, columns=[f"prob_{name}" for name in class_names])
    table.insert(0, "predicted", names[proba.argmax(axis=1)])
    table.insert(0, "actual", names[np.asarray(y_true)])
    table.index.name = "test_index"
    return table


# MLflow takes metric names of letters, digits, underscores, dashes, periods, spaces and slashes.
_NOT_IN_METRIC_NAMES = re.compile(r"[^\w\-. /]")


def per_class_metrics(per_class: pd.DataFrame, class_names: Sequence[str], prefix: str = "test_") -> dict[str, float]:
    """Precision, recall and F1 of each class under its name (``test_recall.circle``), for MLflow: a
    character MLflow refuses in a metric name becomes ``_``."""
    metrics = {}
    for name in class_names:
        key = _NOT_IN_METRIC_NAMES.sub("_", name)
        for measure in ("precision", "recall", "f1-score"):
            metrics[f"{prefix}{measure.removesuffix('-score')}.{key}"] = round(float(per_class.loc[name, measure]), 6)
    return metrics

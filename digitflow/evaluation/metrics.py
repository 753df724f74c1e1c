"""Classification metrics shared by both models, so their numbers mean the same thing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from digitflow.data.datasets import CLASS_NAMES, N_CLASSES

LABELS = list(range(N_CLASSES))
# Train and validation metrics a training stage keeps in its committed metrics file (what `dvc metrics
# diff` shows a reviewer); everything else a run measures is in its MLflow run.
REVIEWED = ("accuracy", "log_loss")


def reviewed_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``train_accuracy``, ``train_log_loss``, ``val_accuracy``, ``val_log_loss`` of ``metrics``."""
    names = [f"{part}_{name}" for part in ("train", "val") for name in REVIEWED]
    return {name: metrics[name] for name in names if name in metrics}


def check_probabilities(proba: np.ndarray, n_rows: int) -> None:
    if proba.shape != (n_rows, N_CLASSES):
        raise ValueError(f"expected probabilities shaped ({n_rows}, {N_CLASSES}), got {proba.shape}")


def summary_metrics(y_true: np.ndarray, proba: np.ndarray, prefix: str = "test_") -> dict[str, float]:
    """Accuracy, log loss and macro precision / recall / F1, under names both trainers share."""
    check_probabilities(proba, len(y_true))
    predicted = proba.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, predicted, labels=LABELS, average="macro", zero_division=0
    )
    values = {
        "accuracy": accuracy_score(y_true, predicted),
        "log_loss": log_loss(y_true, proba, labels=LABELS),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }
    return {f"{prefix}{name}": round(float(value), 6) for name, value in values.items()}


def per_class_report(y_true: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """scikit-learn's classification report as a table: one row per digit plus the averages."""
    report = classification_report(
        y_true, predicted, labels=LABELS, target_names=list(CLASS_NAMES), output_dict=True, zero_division=0
    )
    accuracy = report.pop("accuracy")
    table = pd.DataFrame(report).T
    table.loc["accuracy"] = [np.nan, np.nan, accuracy, table.loc["macro avg", "support"]]
    table["support"] = table["support"].astype(int)
    table.index.name = "class"
    return table


def confusion(y_true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Counts with actual digits as rows and predicted digits as columns."""
    return confusion_matrix(y_true, predicted, labels=LABELS)


def confusion_record(matrix: np.ndarray) -> dict:
    """A confusion matrix as JSON: labels, which axis is which, the counts."""
    return {"labels": list(CLASS_NAMES), "rows": "actual", "columns": "predicted", "matrix": matrix.tolist()}


def predictions_table(y_true: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """One row per test image: actual, predicted and each class probability."""
    check_probabilities(proba, len(y_true))
    table = pd.DataFrame(proba, columns=[f"prob_{name}" for name in CLASS_NAMES])
    table.insert(0, "predicted", proba.argmax(axis=1))
    table.insert(0, "actual", np.asarray(y_true))
    table.index.name = "test_index"
    return table

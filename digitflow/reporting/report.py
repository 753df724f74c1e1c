"""The Markdown report: plain GitHub-flavoured Markdown with PNG figures beside it, no HTML or JavaScript."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from digitflow.core.names import model_title


@dataclass(frozen=True)
class ReportInputs:
    dataset: str
    image_shape: tuple[int, int]
    n_train: int
    n_val: int
    n_test: int
    test_metrics: Mapping[str, Mapping[str, float]]
    train_metrics: Mapping[str, Mapping[str, float]]
    figures: Mapping[str, str]  # figure key -> path relative to the report
    n_misclassified: Mapping[str, int]


def summary_table(inputs: ReportInputs) -> pd.DataFrame:
    rows = {}
    for model, metrics in inputs.test_metrics.items():
        rows[model_title(model)] = {
            "test accuracy": metrics["test_accuracy"],
            "test log loss": metrics["test_log_loss"],
            "macro F1": metrics["test_f1_macro"],
            "validation accuracy": inputs.train_metrics[model]["val_accuracy"],
        }
    return pd.DataFrame(rows).T


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| model | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---:|" * len(table.columns)
    body = [
        f"| {index} | "
        + " | ".join(f"{value:.4f}" if isinstance(value, float | np.floating) else str(value) for value in row)
        + " |"
        for index, row in table.iterrows()
    ]
    return "\n".join([header, rule, *body])


def build_report(inputs: ReportInputs) -> str:
    figures = inputs.figures
    height, width = inputs.image_shape
    sections = [
        f"# digitflow report: {inputs.dataset}",
        "",
        f"{inputs.dataset} images of {height}x{width} pixels: {inputs.n_train} for training, "
        f"{inputs.n_val} for validation, {inputs.n_test} for testing. Both models were trained on the same "
        "split and are compared on the same test images.",
        "",
        "## Comparison",
        "",
        _markdown_table(summary_table(inputs)),
        "",
        "## Sample images",
        "",
        f"![sample training images with their labels]({figures['samples']})",
        "",
        "## Confusion matrices (test set)",
        "",
    ]
    for model in inputs.test_metrics:
        sections += [
            f"### {model_title(model)}",
            "",
            f"![{model} confusion matrix]({figures[f'confusion_{model}']})",
            "",
        ]
    sections += ["## Misclassified test images", ""]
    for model in inputs.test_metrics:
        sections += [
            f"### {model_title(model)}: {inputs.n_misclassified[model]} of {inputs.n_test} wrong",
            "",
            f"![{model} misclassified test images]({figures[f'misclassified_{model}']})",
            "",
        ]
    sections += [
        "## Learning curves",
        "",
        "Per-epoch loss and accuracy of the PyTorch model on the training and validation sets "
        "(scikit-learn's solver has no epochs).",
        "",
        f"![PyTorch learning curves]({figures['learning_curves']})",
        "",
        "## Coefficients",
        "",
        "Each class's weights drawn as an image: red pixels raise the class's score, blue pixels lower it.",
        "",
    ]
    for model in inputs.test_metrics:
        sections += [
            f"### {model_title(model)}",
            "",
            f"![{model} coefficients]({figures[f'coefficients_{model}']})",
            "",
        ]
    return "\n".join(sections)


def misclassified(predictions: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The first ``limit`` wrong test predictions, most confident mistakes first."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]].copy()
    prob_columns = [c for c in predictions.columns if c.startswith("prob_")]
    wrong["confidence"] = wrong[prob_columns].max(axis=1)
    return wrong.sort_values("confidence", ascending=False).head(limit)

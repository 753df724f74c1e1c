"""The Markdown report: plain GitHub-flavoured Markdown with PNG figures beside it, no HTML or JavaScript."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    # What the check stage found (reports/data_check.json); the report lists it before the results.
    data_check: Mapping[str, Any] | None = None


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


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def data_check_section(check: Mapping[str, Any]) -> list[str]:
    """What the data checks found, one bullet each, and the images per class in each part of the split."""
    lines = ["## Data checks", "", f"Before training (`reports/data_check.json`; duplicates by {check['hash']}):", ""]
    lines += [f"- {_cell(finding)}" for finding in check["findings"]]
    lines += ["", "| class | images | train | validation | test |", "|---|---:|---:|---:|---:|"]
    for name, counts in check["classes"].items():
        lines.append(f"| {_cell(name)} | {counts['images']} | {counts['train']} | {counts['val']} | {counts['test']} |")
    return [*lines, ""]


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
        *(data_check_section(inputs.data_check) if inputs.data_check else []),
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


def samples_per_class(labels: np.ndarray, rows: np.ndarray, n_classes: int, total: int = 30) -> np.ndarray:
    """The first few of ``rows`` of each class, class by class: every class shows, ``total`` in all or
    one per class where there are more classes."""
    each = max(1, total // max(1, n_classes))
    return np.concatenate([rows[labels[rows] == label][:each] for label in range(n_classes)]).astype(int)


def caption(prefix: str, name: str) -> str:
    """``label 3`` for a short class name; a longer one alone, shortened, so captions do not overlap."""
    from digitflow.evaluation.figures import short_name

    return f"{prefix} {name}" if len(name) <= 4 else short_name(name, 12)


def mistake_captions(predicted: Sequence[Any], actual: Sequence[Any]) -> list[str]:
    """``pred 3 / true 8`` for short class names, else the two names on two lines."""
    from digitflow.evaluation.figures import short_name

    pairs = [(str(p), str(a)) for p, a in zip(predicted, actual, strict=True)]
    if all(len(p) <= 2 and len(a) <= 2 for p, a in pairs):
        return [f"pred {p} / true {a}" for p, a in pairs]
    return [f"pred {short_name(p, 10)}\ntrue {short_name(a, 10)}" for p, a in pairs]


def misclassified(predictions: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The first ``limit`` wrong test predictions, most confident mistakes first."""
    wrong = predictions[predictions["actual"] != predictions["predicted"]].copy()
    prob_columns = [c for c in predictions.columns if c.startswith("prob_")]
    wrong["confidence"] = wrong[prob_columns].max(axis=1)
    return wrong.sort_values("confidence", ascending=False).head(limit)

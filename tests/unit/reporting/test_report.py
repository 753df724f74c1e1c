"""digitflow.reporting.report: the Markdown report links every figure and shows the comparison numbers."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from digitflow.core.names import MODEL_TITLES
from digitflow.reporting.report import (
    ReportInputs,
    build_report,
    caption,
    misclassified,
    mistake_captions,
    samples_per_class,
    summary_table,
)

MODELS = ("sklearn", "torch")


def figure_paths() -> dict[str, str]:
    keys = ["samples", "learning_curves"] + [
        f"{kind}_{model}" for kind in ("confusion", "misclassified", "coefficients") for model in MODELS
    ]
    return {key: f"figures/{key}.png" for key in keys}


@pytest.fixture
def inputs() -> ReportInputs:
    return ReportInputs(
        dataset="digits",
        image_shape=(8, 8),
        n_train=1245,
        n_val=138,
        n_test=414,
        test_metrics={
            "sklearn": {"test_accuracy": 0.961353, "test_log_loss": 0.123456, "test_f1_macro": 0.960001},
            "torch": {"test_accuracy": 0.970048, "test_log_loss": 0.098765, "test_f1_macro": 0.969876},
        },
        train_metrics={
            "sklearn": {"val_accuracy": 0.95652, "fit_seconds": 0.4321},
            "torch": {"val_accuracy": 0.963768, "fit_seconds": 2.5},
        },
        figures=figure_paths(),
        n_misclassified={"sklearn": 16, "torch": 12},
    )


def test_every_figure_is_linked(inputs):
    report = build_report(inputs)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(links) == sorted(inputs.figures.values())


def test_comparison_table_values(inputs):
    report = build_report(inputs)
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    header = rows.pop("model")
    assert "test accuracy" in header
    # Timings differ between two runs of the same params: they stay in MLflow, out of the report.
    assert "training time" not in header
    for model in MODELS:
        row = rows[MODEL_TITLES[model]]
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        test, train = inputs.test_metrics[model], inputs.train_metrics[model]
        expected = [
            test["test_accuracy"],
            test["test_log_loss"],
            test["test_f1_macro"],
            train["val_accuracy"],
        ]
        assert cells == [f"{value:.4f}" for value in expected]


def test_comparison_table_frame(inputs):
    table = summary_table(inputs)
    assert list(table.index) == [MODEL_TITLES[m] for m in MODELS]
    assert table.loc[MODEL_TITLES["torch"], "validation accuracy"] == 0.963768


def test_report_text(inputs):
    report = build_report(inputs)
    assert report.startswith("# digitflow report: digits\n")
    assert "8x8 pixels: 1245 for training, 138 for validation, 414 for testing" in report
    assert f"### {MODEL_TITLES['sklearn']}: 16 of 414 wrong" in report
    assert f"### {MODEL_TITLES['torch']}: 12 of 414 wrong" in report
    assert "<" not in report  # plain Markdown, no HTML


def test_unknown_model_uses_its_own_name(inputs):
    test_metrics = {"forest": inputs.test_metrics["sklearn"]}
    other = ReportInputs(
        **{
            **inputs.__dict__,
            "test_metrics": test_metrics,
            "train_metrics": {"forest": inputs.train_metrics["sklearn"]},
            "figures": {
                **inputs.figures,
                **{f"{k}_forest": f"figures/{k}_forest.png" for k in ("confusion", "misclassified", "coefficients")},
            },
            "n_misclassified": {"forest": 3},
        }
    )
    report = build_report(other)
    assert "| forest | 0.9614 |" in report
    assert "figures/confusion_forest.png" in report


def test_missing_figure_is_an_error(inputs):
    figures = dict(inputs.figures)
    del figures["learning_curves"]
    with pytest.raises(KeyError, match="learning_curves"):
        build_report(ReportInputs(**{**inputs.__dict__, "figures": figures}))


def predictions(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    """(actual, predicted, probability of the predicted class) -> a predictions table."""
    proba = np.full((len(rows), 10), 0.0)
    for i, (_, predicted, p) in enumerate(rows):
        proba[i] = (1 - p) / 9
        proba[i, predicted] = p
    table = pd.DataFrame(proba, columns=[f"prob_{d}" for d in range(10)])
    table.insert(0, "predicted", [r[1] for r in rows])
    table.insert(0, "actual", [r[0] for r in rows])
    table.index.name = "test_index"
    return table


def test_misclassified_most_confident_first():
    table = predictions([(1, 1, 0.99), (2, 7, 0.40), (3, 8, 0.95), (4, 4, 0.50), (5, 6, 0.70), (9, 4, 0.80)])
    wrong = misclassified(table, limit=10)
    assert list(wrong.index) == [2, 5, 4, 1]  # keeps the test indices, sorted by confidence
    assert (wrong["actual"] != wrong["predicted"]).all()
    np.testing.assert_allclose(wrong["confidence"], [0.95, 0.80, 0.70, 0.40])


def test_misclassified_limit():
    table = predictions([(1, 2, 0.5), (1, 3, 0.6), (1, 4, 0.7)])
    assert list(misclassified(table, limit=2).index) == [2, 1]
    assert misclassified(predictions([(1, 1, 0.9)]), limit=5).empty


# --- named classes and the data checks (issue 25) ----------------------------------------------------


def test_the_data_checks_come_before_the_results(inputs):
    check = {
        "hash": "SHA-256 of each picture's decoded pixels",
        "findings": ["leakage: 2 test images are the same picture as a training image", "40 images in 2 classes"],
        "classes": {
            "circle": {"images": 25, "train": 17, "val": 2, "test": 6},
            "a|b": {"images": 15, "train": 10, "val": 1, "test": 4},
        },
    }
    report = build_report(replace(inputs, data_check=check))
    assert report.index("## Data checks") < report.index("## Comparison")
    assert "- leakage: 2 test images are the same picture as a training image\n" in report
    assert "| circle | 25 | 17 | 2 | 6 |" in report
    assert "| a\\|b | 15 | 10 | 1 | 4 |" in report  # a class name cannot break the table
    assert "## Data checks" not in build_report(inputs)


def test_samples_show_every_class_in_order():
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 2, 0, 1, 2, 2])
    rows = np.arange(12)
    assert samples_per_class(labels, rows, 3, total=6).tolist() == [1, 3, 2, 5, 0, 4]
    assert samples_per_class(labels, rows, 3, total=2).tolist() == [1, 2, 0]  # at least one of each class


def test_captions_stay_short_for_long_class_names():
    assert mistake_captions(["3", "8"], ["8", "1"]) == ["pred 3 / true 8", "pred 8 / true 1"]
    assert mistake_captions(["circle"], ["a_very_long_class_name"]) == ["pred circle\ntrue a_very_lo\u2026"]
    assert caption("label", "7") == "label 7"
    assert caption("label", "triangle") == "triangle"

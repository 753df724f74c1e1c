"""digitflow.evaluation.evaluate: one model's test results, the plain-text log and the Excel workbook."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from digitflow.evaluation.evaluate import evaluate_model, evaluation_log, metrics_by_model
from digitflow.evaluation.metrics import confusion, summary_metrics
from digitflow.evaluation.workbook import write_workbook


def probabilities(labels: np.ndarray, wrong_every: int, seed: int) -> np.ndarray:
    """Confident probabilities; every ``wrong_every``-th image is predicted as the next digit."""
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0.0, 0.05, size=(len(labels), 10))
    predicted = labels.copy()
    predicted[::wrong_every] = (labels[::wrong_every] + 1) % 10
    proba[np.arange(len(labels)), predicted] = 0.9
    return proba / proba.sum(axis=1, keepdims=True)


@pytest.fixture
def labels() -> np.ndarray:
    return np.tile(np.arange(10), 5)


@pytest.fixture
def evaluations(labels):
    return [
        evaluate_model("sklearn", labels, probabilities(labels, wrong_every=5, seed=0)),
        evaluate_model("torch", labels, probabilities(labels, wrong_every=10, seed=1)),
    ]


def test_evaluate_model(labels, evaluations):
    sklearn_eval = evaluations[0]
    proba = probabilities(labels, wrong_every=5, seed=0)
    assert sklearn_eval.model == "sklearn"
    assert sklearn_eval.metrics == summary_metrics(labels, proba, "test_")
    assert sklearn_eval.metrics["test_accuracy"] == pytest.approx(0.8)
    assert evaluations[1].metrics["test_accuracy"] == pytest.approx(0.9)
    np.testing.assert_array_equal(sklearn_eval.confusion, confusion(labels, proba.argmax(axis=1)))
    assert len(sklearn_eval.predictions) == len(labels)
    assert sklearn_eval.per_class.loc["accuracy", "f1-score"] == pytest.approx(0.8)


def test_comparison_table_has_a_column_per_model(evaluations):
    table = metrics_by_model(evaluations)
    assert list(table.columns) == ["sklearn", "torch"]
    assert table.loc["test_accuracy", "torch"] == pytest.approx(0.9)
    assert set(table.index) == set(evaluations[0].metrics)


def test_evaluation_log(evaluations):
    log = evaluation_log(evaluations, "digits")
    lines = log.splitlines()
    assert lines[0] == "Evaluation on the digits test set (50 images)"
    assert "== sklearn ==" in lines
    assert "== torch ==" in lines
    assert lines.index("== sklearn ==") < lines.index("== torch ==")
    assert log.count("Confusion matrix (rows: actual, columns: predicted):") == 2
    accuracy_line = next(line for line in lines if line.startswith("test_accuracy"))
    assert accuracy_line.split() == ["test_accuracy", "0.8000", "0.9000"]
    # The confusion matrix rows are printed as they are: row 0 of sklearn's is [4, 1, 0, ...].
    block = lines[lines.index("== sklearn ==") :]
    matrix_start = block.index("Confusion matrix (rows: actual, columns: predicted):") + 2
    first_row = [int(v) for v in block[matrix_start].split()]
    assert first_row == [0, *evaluations[0].confusion[0].tolist()]


def test_evaluation_log_without_models():
    assert evaluation_log([], "mnist").startswith("Evaluation on the mnist test set (0 images)")


def test_write_workbook(tmp_path: Path, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    sheets = pd.read_excel(path, sheet_name=None)
    assert list(sheets) == ["comparison", "sklearn", "torch", "sklearn predictions", "torch predictions"]

    comparison = pd.read_excel(path, sheet_name="comparison", index_col="metric")
    pd.testing.assert_frame_equal(comparison, metrics_by_model(evaluations), check_names=False)

    for evaluation in evaluations:
        n_metrics = len(evaluation.metrics)
        metrics = pd.read_excel(path, sheet_name=evaluation.model, index_col="metric", nrows=n_metrics)
        assert metrics["value"].to_dict() == pytest.approx(evaluation.metrics)
        per_class = pd.read_excel(
            path, sheet_name=evaluation.model, skiprows=n_metrics + 2, nrows=len(evaluation.per_class), index_col=0
        )
        assert list(per_class.index) == list(evaluation.per_class.index)
        np.testing.assert_allclose(per_class["recall"], evaluation.per_class["recall"])
        matrix_start = n_metrics + 2 + len(evaluation.per_class) + 2
        matrix = pd.read_excel(path, sheet_name=evaluation.model, skiprows=matrix_start, nrows=10, index_col=0)
        assert matrix.index.name == "actual \\ predicted"
        np.testing.assert_array_equal(matrix.to_numpy(), evaluation.confusion)


def test_workbook_has_per_image_predictions(tmp_path: Path, labels, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    for evaluation in evaluations:
        sheet = pd.read_excel(path, sheet_name=f"{evaluation.model} predictions")
        assert list(sheet.columns) == ["index", "actual", "predicted", "probability"]
        assert len(sheet) == len(labels)
        np.testing.assert_array_equal(sheet["actual"], labels)
        np.testing.assert_array_equal(sheet["predicted"], evaluation.predictions["predicted"])
        proba = evaluation.predictions.filter(like="prob_").to_numpy()
        np.testing.assert_allclose(sheet["probability"], proba[np.arange(len(labels)), sheet["predicted"]])
    # the sklearn model gets every fifth image wrong
    sheet = pd.read_excel(path, sheet_name="sklearn predictions")
    assert (sheet["actual"] != sheet["predicted"]).sum() == len(labels) // 5


def test_workbook_formats_and_widths(tmp_path: Path, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    book = openpyxl.load_workbook(path)
    predictions = book["torch predictions"]
    assert [c.value for c in predictions[1]] == ["index", "actual", "predicted", "probability"]
    assert predictions["D2"].number_format == "0.0000"
    assert predictions["B2"].number_format == "0"
    assert 8 <= predictions.column_dimensions["D"].width <= 40  # "probability" plus a margin
    metrics = book["sklearn"]
    assert metrics["A1"].value == "metric"
    assert metrics["B2"].number_format == "0.0000"
    # the widest metric name, test_precision_macro, fits its column
    assert metrics.column_dimensions["A"].width >= len("test_precision_macro")


def test_workbook_bytes_depend_only_on_the_results(tmp_path: Path, evaluations):
    """Zip entry times have a two-second resolution: write, wait past it, write again."""
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_workbook(first, evaluations)
    time.sleep(2.1)
    write_workbook(second, evaluations)
    assert first.read_bytes() == second.read_bytes()

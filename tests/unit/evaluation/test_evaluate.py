"""digitflow.evaluation.evaluate: one model's test results and the plain-text log (the workbook:
test_workbook.py)."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.evaluation.evaluate import evaluation_log, metrics_by_model
from digitflow.evaluation.metrics import confusion, summary_metrics
from tests.unit.evaluation.conftest import probabilities


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

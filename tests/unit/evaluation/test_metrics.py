"""digitflow.evaluation.metrics: the same numbers scikit-learn gives, under the names both trainers share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

from digitflow.evaluation.metrics import confusion, per_class_report, predictions_table, summary_metrics


@pytest.fixture
def example() -> tuple[np.ndarray, np.ndarray]:
    """30 images, every digit three times; probabilities from a seeded Dirichlet, some argmaxes wrong."""
    rng = np.random.default_rng(7)
    y_true = np.repeat(np.arange(10), 3)
    proba = rng.dirichlet(np.ones(10), size=len(y_true))
    # Make two thirds of the rows confidently right so accuracy is neither 0 nor 1.
    right = np.arange(len(y_true)) % 3 != 0
    proba[right, y_true[right]] += 2.0
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, proba


def test_summary_metrics_match_sklearn(example):
    y_true, proba = example
    predicted = proba.argmax(axis=1)
    metrics = summary_metrics(y_true, proba, prefix="val_")
    expected = {
        "val_accuracy": accuracy_score(y_true, predicted),
        "val_log_loss": log_loss(y_true, proba),
        "val_precision_macro": precision_score(y_true, predicted, average="macro", zero_division=0),
        "val_recall_macro": recall_score(y_true, predicted, average="macro", zero_division=0),
        "val_f1_macro": f1_score(y_true, predicted, average="macro", zero_division=0),
    }
    assert set(metrics) == set(expected)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
        assert isinstance(metrics[name], float)
    assert 0 < metrics["val_accuracy"] < 1


def test_default_prefix_is_test(example):
    assert set(summary_metrics(*example)) == {
        "test_accuracy",
        "test_log_loss",
        "test_precision_macro",
        "test_recall_macro",
        "test_f1_macro",
    }


def test_absent_classes_still_count_in_macro_averages():
    # Only digits 0 and 1 appear; log loss and macro averages are over all ten digits.
    y_true = np.array([0, 1, 1])
    proba = np.full((3, 10), 0.01)
    proba[[0, 1, 2], [0, 1, 0]] = 0.91
    metrics = summary_metrics(y_true, proba)
    predicted = proba.argmax(axis=1)
    labels = list(range(10))
    assert metrics["test_f1_macro"] == pytest.approx(
        f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0), abs=1e-6
    )
    assert metrics["test_log_loss"] == pytest.approx(log_loss(y_true, proba, labels=labels), abs=1e-6)
    assert metrics["test_accuracy"] == pytest.approx(2 / 3, abs=1e-6)


@pytest.mark.parametrize("shape", [(30, 9), (29, 10), (30,)])
def test_probabilities_of_wrong_shape_are_refused(example, shape):
    y_true, _ = example
    with pytest.raises(ValueError, match=r"expected probabilities shaped \(30, 10\)") as caught:
        summary_metrics(y_true, np.full(shape, 0.1))
    assert str(shape) in str(caught.value)
    with pytest.raises(ValueError, match="expected probabilities"):
        predictions_table(y_true, np.full(shape, 0.1))


def test_per_class_report_rows(example):
    y_true, proba = example
    predicted = proba.argmax(axis=1)
    table = per_class_report(y_true, predicted)
    assert list(table.index) == [str(d) for d in range(10)] + ["macro avg", "weighted avg", "accuracy"]
    assert table.index.name == "class"
    assert list(table.columns) == ["precision", "recall", "f1-score", "support"]
    assert table.loc[[str(d) for d in range(10)], "support"].tolist() == [3] * 10
    assert table.loc["accuracy", "support"] == 30
    assert table.loc["accuracy", "f1-score"] == pytest.approx(accuracy_score(y_true, predicted))
    assert np.isnan(table.loc["accuracy", "precision"])
    per_digit_recall = [np.mean(predicted[y_true == d] == d) for d in range(10)]
    np.testing.assert_allclose(table.loc[[str(d) for d in range(10)], "recall"], per_digit_recall)
    assert table.loc["macro avg", "f1-score"] == pytest.approx(f1_score(y_true, predicted, average="macro"))


def test_confusion_rows_are_actual_columns_predicted():
    y_true = np.array([0, 0, 0, 3])
    predicted = np.array([1, 1, 0, 3])
    matrix = confusion(y_true, predicted)
    assert matrix.shape == (10, 10)
    assert matrix[0, 1] == 2  # two actual zeros predicted as one
    assert matrix[1, 0] == 0
    assert matrix[0, 0] == 1
    assert matrix[3, 3] == 1
    assert matrix.sum() == 4
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(y_true, minlength=10))
    np.testing.assert_array_equal(matrix.sum(axis=0), np.bincount(predicted, minlength=10))


def test_predictions_table(example):
    y_true, proba = example
    table = predictions_table(y_true, proba)
    assert list(table.columns) == ["actual", "predicted"] + [f"prob_{d}" for d in range(10)]
    assert table.index.name == "test_index"
    np.testing.assert_array_equal(table["actual"], y_true)
    np.testing.assert_array_equal(table["predicted"], proba.argmax(axis=1))
    np.testing.assert_allclose(table.filter(like="prob_").to_numpy(), proba)
    assert isinstance(table, pd.DataFrame)

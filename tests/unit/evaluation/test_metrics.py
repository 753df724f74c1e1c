"""digitflow.evaluation.metrics: the same numbers scikit-learn gives, under the names both trainers share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

from digitflow.data.datasets import DIGIT_CLASSES
from digitflow.evaluation.metrics import (
    confusion,
    confusion_record,
    per_class_metrics,
    per_class_report,
    predictions_table,
    summary_metrics,
)


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


@pytest.mark.parametrize("shape", [(29, 10), (30,), (30, 10, 1)])
def test_probabilities_of_wrong_shape_are_refused(example, shape):
    y_true, _ = example
    with pytest.raises(ValueError, match=r"expected probabilities shaped \(30, n_classes\)") as caught:
        summary_metrics(y_true, np.full(shape, 0.1))
    assert str(shape) in str(caught.value)
    with pytest.raises(ValueError, match=r"expected probabilities shaped \(30, 10\)"):
        predictions_table(y_true, np.full(shape, 0.1), DIGIT_CLASSES)


def test_predictions_need_a_column_per_named_class(example):
    y_true, proba = example
    with pytest.raises(ValueError, match=r"expected probabilities shaped \(30, 9\), got \(30, 10\)"):
        predictions_table(y_true, proba, DIGIT_CLASSES[:9])


def test_per_class_report_rows(example):
    y_true, proba = example
    predicted = proba.argmax(axis=1)
    table = per_class_report(y_true, predicted, DIGIT_CLASSES)
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
    matrix = confusion(y_true, predicted, 10)
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
    table = predictions_table(y_true, proba, DIGIT_CLASSES)
    assert list(table.columns) == ["actual", "predicted"] + [f"prob_{d}" for d in range(10)]
    assert table.index.name == "test_index"
    # Digits are named by themselves, so the CSV reads as the integer labels always did.
    np.testing.assert_array_equal(table["actual"], y_true.astype(str))
    np.testing.assert_array_equal(table["predicted"], proba.argmax(axis=1).astype(str))
    assert table.to_csv().splitlines()[1].startswith(f"0,{y_true[0]},{proba[0].argmax()},")
    np.testing.assert_allclose(table.filter(like="prob_").to_numpy(), proba)
    assert isinstance(table, pd.DataFrame)


NAMES = ("circle", "square", "triangle")


def three_classes() -> tuple[np.ndarray, np.ndarray]:
    """Nine images of three named classes; one square taken for a circle."""
    y_true = np.repeat(np.arange(3), 3)
    predicted = y_true.copy()
    predicted[3] = 0
    proba = np.full((9, 3), 0.1)
    proba[np.arange(9), predicted] = 0.8
    return y_true, proba


def test_named_classes_everywhere():
    y_true, proba = three_classes()
    predicted = proba.argmax(axis=1)
    table = predictions_table(y_true, proba, NAMES)
    assert list(table.columns) == ["actual", "predicted", "prob_circle", "prob_square", "prob_triangle"]
    assert table.loc[3, "actual"] == "square"
    assert table.loc[3, "predicted"] == "circle"
    report = per_class_report(y_true, predicted, NAMES)
    assert list(report.index[:3]) == list(NAMES)
    assert report.loc["square", "recall"] == pytest.approx(2 / 3)
    matrix = confusion(y_true, predicted, len(NAMES))
    assert confusion_record(matrix, NAMES)["labels"] == list(NAMES)
    assert matrix[1, 0] == 1
    assert summary_metrics(y_true, proba)["test_accuracy"] == pytest.approx(8 / 9, abs=1e-6)


def test_per_class_metrics_are_named_by_class_in_names_mlflow_takes():
    y_true, proba = three_classes()
    names = ("circle", "big square", "tri+angle")
    metrics = per_class_metrics(per_class_report(y_true, proba.argmax(axis=1), names), names)
    assert metrics["test_recall.big square"] == pytest.approx(2 / 3, abs=1e-6)
    assert metrics["test_precision.circle"] == pytest.approx(3 / 4, abs=1e-6)
    assert metrics["test_f1.tri_angle"] == 1.0
    assert len(metrics) == 9

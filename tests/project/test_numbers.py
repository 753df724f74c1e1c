"""tests/support/numbers.py: result files made on another machine are equal within 1e-6, and only within it."""

from __future__ import annotations

import json

from tests.support.numbers import differences

HISTORY = "epoch,train_loss,val_loss\n24,0.104597,0.121803\n25,0.104512,0.121782\n"
METRICS = json.dumps({"sklearn": {"test_accuracy": 0.956522, "test_log_loss": 0.196641}, "mlflow_run_id": "abc"})


def test_a_last_decimal_across_a_rounding_boundary_is_equal() -> None:
    """The case seen on an AVX2 machine without AVX-512: epoch 25's val_loss one unit up in its 6th decimal."""
    assert 0.121783 - 0.121782 > 1e-6  # what binary floats would make of it
    assert differences(HISTORY.replace("0.121782", "0.121783"), HISTORY, "metrics/history.csv") == []
    assert differences(METRICS.replace("0.196641", "0.19664"), METRICS, "metrics/evaluate.json") == []
    assert differences(HISTORY, HISTORY, "metrics/history.csv") == []


def test_a_difference_beyond_1e6_fails_naming_the_value() -> None:
    assert differences(HISTORY.replace("0.121782", "0.121784"), HISTORY, "metrics/history.csv") == [
        "metrics/history.csv, line 3, val_loss: 0.121784 != 0.121782 (differ by 0.000002, more than 0.000001)"
    ]
    assert differences(METRICS.replace("0.956522", "0.956520"), METRICS, "metrics/evaluate.json") == [
        "metrics/evaluate.json, sklearn, test_accuracy: 0.956520 != 0.956522 (differ by 0.000002, more than 0.000001)"
    ]


def test_everything_but_numbers_is_compared_exactly() -> None:
    def found(ours: str, theirs: str, name: str) -> int:
        return len(differences(ours, theirs, name))

    assert found(METRICS.replace('"abc"', '"abd"'), METRICS, "m.json") == 1
    assert found(METRICS.replace("test_log_loss", "test_logloss"), METRICS, "m.json") == 1  # a renamed key
    assert found(HISTORY.replace("val_loss", "val_los"), HISTORY, "h.csv") >= 1  # the header
    assert found(HISTORY + "26,0.1,0.1\n", HISTORY, "h.csv") == 1  # a row more
    assert found("actual,predicted\n2,2\n", "actual,predicted\n2,3\n", "confusion.csv") == 1  # a label is a number
    assert found("a few words\n", "a few words \n", "log.txt") == 1  # any other file: exactly

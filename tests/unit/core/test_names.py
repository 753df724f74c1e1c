"""digitflow.core.names: one list of models, their names for people and the registry, metric directions."""

from __future__ import annotations

import pytest

from digitflow.core.names import MODEL_NAMES, MODEL_TITLES, REGISTERED_MODELS, lower_is_better, model_title


@pytest.mark.parametrize("metric", ["log_loss", "test_log_loss", "val_log_loss", "train_loss", "Val_Loss"])
def test_losses_are_better_lower(metric: str) -> None:
    assert lower_is_better(metric)


@pytest.mark.parametrize(
    "metric", ["test_accuracy", "val_accuracy", "test_precision_macro", "test_recall_macro", "test_f1_macro"]
)
def test_scores_are_better_higher(metric: str) -> None:
    assert not lower_is_better(metric)


def test_every_model_has_a_title_and_a_registered_name() -> None:
    assert MODEL_NAMES == ("sklearn", "torch")
    assert set(MODEL_TITLES) == set(REGISTERED_MODELS) == set(MODEL_NAMES)
    assert REGISTERED_MODELS == {"sklearn": "digitflow-sklearn", "torch": "digitflow-torch"}
    assert model_title("torch") == "PyTorch logistic regression"
    assert model_title("xgboost") == "xgboost"  # a name without a title stands for itself

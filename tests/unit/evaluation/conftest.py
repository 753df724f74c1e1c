"""Two models' results on the same 50 test images, for the evaluation log and the workbook."""

from __future__ import annotations

import numpy as np
import pytest

from digitflow.evaluation.evaluate import ModelEvaluation, evaluate_model


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
def evaluations(labels: np.ndarray) -> list[ModelEvaluation]:
    """sklearn gets every fifth image wrong (accuracy 0.8), torch every tenth (0.9)."""
    return [
        evaluate_model("sklearn", labels, probabilities(labels, wrong_every=5, seed=0)),
        evaluate_model("torch", labels, probabilities(labels, wrong_every=10, seed=1)),
    ]

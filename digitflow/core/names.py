"""Names every layer shares: the two models, how people and MLflow's registry call them, and which way
each metric improves.

Kept apart from the modules that use them (the report, the registry, the sweep, the PR gate) so that no
module has to import a higher layer just to learn a title or a direction.
"""

from __future__ import annotations

# The trainers, in the order every table and figure lists them.
MODEL_NAMES = ("sklearn", "torch")
MODEL_TITLES = {"sklearn": "scikit-learn LogisticRegression", "torch": "PyTorch logistic regression"}
# Names in MLflow's model registry, one registered model per trainer.
REGISTERED_MODELS = {"sklearn": "digitflow-sklearn", "torch": "digitflow-torch"}


def model_title(model: str) -> str:
    """The model's title for people (``scikit-learn LogisticRegression``), or its name if it has none."""
    return MODEL_TITLES.get(model, model)


def lower_is_better(metric: str) -> bool:
    """Losses (``log_loss``, ``test_log_loss``, ``val_log_loss``) improve when they fall; every other
    metric this project reports (accuracy, precision, recall, F1) when it rises."""
    return "loss" in metric.lower()

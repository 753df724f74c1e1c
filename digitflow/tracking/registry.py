"""MLflow's model registry: test metrics on each version, and the ``champion`` alias users serve.

Each training run registers its model (``digitflow-sklearn``, ``digitflow-torch``); ``evaluate`` then
tags that version with the run's test metrics, so versions can be compared without opening runs.
``promote`` moves the alias ``champion`` to the best version by a test metric, or to a given version,
and refuses one that is worse than the current champion unless forced.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from digitflow.core.errors import DigitflowError
from digitflow.core.names import REGISTERED_MODELS, lower_is_better
from digitflow.models.card import ModelCard
from digitflow.models.predict import Predictor
from digitflow.tracking.runs import RunInfo

CHAMPION = "champion"


class PromotionError(DigitflowError):
    """The requested promotion would make the champion worse, or names nothing that exists."""


def record_test_metrics(client: Any, info: RunInfo, metrics: Mapping[str, float]) -> None:
    """Tag the registered version that ``info`` produced with its test metrics (if it is in this store)."""
    from mlflow.exceptions import MlflowException

    if not info.registered_model or not info.model_version:
        return
    try:
        version = client.get_model_version(info.registered_model, info.model_version)
    except MlflowException:
        return
    if version.run_id != info.run_id:  # same number, another store's version
        return
    for key, value in metrics.items():
        client.set_model_version_tag(info.registered_model, info.model_version, key, f"{value:.6f}")


def is_better(metric: str, candidate: float, incumbent: float) -> bool:
    return candidate < incumbent if lower_is_better(metric) else candidate > incumbent


def _metric(version: Any, metric: str) -> float:
    value = version.tags.get(metric)
    return float(value) if value is not None else math.nan


@dataclass(frozen=True)
class Promotion:
    registered_model: str
    version: str
    metric: str
    value: float
    previous_version: str | None
    previous_value: float | None

    def describe(self) -> str:
        moved = f"{self.registered_model} version {self.version} ({self.metric} {self.value:.4f})"
        if self.previous_version is None:
            return f"{moved} is now @{CHAMPION} (there was no champion)"
        if self.previous_version == self.version:
            return f"{moved} was already @{CHAMPION}"
        return (
            f"{moved} is now @{CHAMPION}, replacing version {self.previous_version} "
            f"({self.metric} {self.previous_value:.4f})"
        )


def promote(
    model: str, metric: str = "test_accuracy", version: str | None = None, force: bool = False, client: Any = None
) -> Promotion:
    """Point ``@champion`` of ``digitflow-<model>`` at ``version``, or at the best evaluated version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    name = REGISTERED_MODELS[model]
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise PromotionError(f"cannot read registered model {name}: {exc}") from None
    evaluated = [v for v in versions if not math.isnan(_metric(v, metric))]
    if version is not None:
        chosen = next((v for v in versions if str(v.version) == str(version)), None)
        if chosen is None:
            known = ", ".join(sorted((str(v.version) for v in versions), key=int)) or "none"
            raise PromotionError(f"{name} has no version {version} (versions: {known})")
        if math.isnan(_metric(chosen, metric)) and not force:
            raise PromotionError(
                f"{name} version {version} has no {metric} (it was never evaluated: run `dvc repro`); "
                "use --force to promote it anyway"
            )
    elif not evaluated:
        raise PromotionError(f"no version of {name} has a {metric} tag yet: run the pipeline (`dvc repro`) first")
    else:
        sign = -1 if lower_is_better(metric) else 1
        chosen = max(evaluated, key=lambda v: (sign * _metric(v, metric), int(v.version)))
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    value = _metric(chosen, metric)
    if current is not None and str(current.version) != str(chosen.version):
        incumbent = _metric(current, metric)
        if not force and not math.isnan(incumbent) and (math.isnan(value) or is_better(metric, incumbent, value)):
            raise PromotionError(
                f"refusing to promote {name} version {chosen.version} ({metric} {value:.4f}): the current "
                f"@{CHAMPION}, version {current.version}, is better ({metric} {incumbent:.4f}); use --force"
            )
    client.set_registered_model_alias(name, CHAMPION, str(chosen.version))
    return Promotion(
        registered_model=name,
        version=str(chosen.version),
        metric=metric,
        value=value,
        previous_version=None if current is None else str(current.version),
        previous_value=None if current is None else _metric(current, metric),
    )


def champion_uri(model: str) -> str:
    return f"models:/{REGISTERED_MODELS[model]}@{CHAMPION}"


def champion_predictor(model_uri: str) -> tuple[Predictor, ModelCard]:
    """A logged or registered MLflow model (``models:/digitflow-torch@champion``), as pyfunc, with its card."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    metadata = pyfunc.metadata.metadata or {}
    if not {"image_shape", "pixel_max", "dataset"} <= set(metadata):
        raise DigitflowError(f"{model_uri} was not logged by digitflow's training stages (no image metadata)")
    card = ModelCard.from_dict(metadata)
    return (lambda rows: np.asarray(pyfunc.predict(rows))), card

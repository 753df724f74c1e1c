"""MLflow's model registry: test metrics on each version, and the ``champion`` alias users serve.

Each training run registers its model (``digitflow-sklearn``, ``digitflow-torch``) where its account may
(``model_files.register_logged_model``); ``evaluate`` then tags that version with the run's test metrics,
so versions can be compared without opening runs. ``promote`` moves the alias ``champion`` to the best
version by a test metric, or to a given version, among the versions trained on the main branch (each
records its branch; ``branch=None`` takes every branch's), and refuses one that is worse than the current
champion unless forced. The champion is used only after its files are checked against the digest its
registrar recorded (``champion_predictor``, and ``digitflow serve``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.core.errors import DigitflowError
from digitflow.core.names import REGISTERED_MODELS, lower_is_better
from digitflow.models.card import ModelCard
from digitflow.models.predict import Predictor
from digitflow.tracking.model_files import BRANCH_TAG, verified_download
from digitflow.tracking.runs import RunInfo

CHAMPION = "champion"
MAIN_BRANCH = "main"


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


def _branch(version: Any) -> str:
    return version.tags.get(BRANCH_TAG) or "(not recorded)"


def promote(
    model: str,
    metric: str = "test_accuracy",
    version: str | None = None,
    force: bool = False,
    client: Any = None,
    branch: str | None = MAIN_BRANCH,
) -> Promotion:
    """Point ``@champion`` of ``digitflow-<model>`` at ``version``, or at the best evaluated version trained
    on ``branch`` (``None``: on any branch)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    name = REGISTERED_MODELS[model]
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise PromotionError(f"cannot read registered model {name}: {exc}") from None
    candidates = [v for v in versions if branch is None or _branch(v) == branch]
    evaluated = [v for v in candidates if not math.isnan(_metric(v, metric))]
    if version is not None:
        chosen = next((v for v in versions if str(v.version) == str(version)), None)
        if chosen is None:
            known = ", ".join(sorted((str(v.version) for v in versions), key=int)) or "none"
            raise PromotionError(f"{name} has no version {version} (versions: {known})")
        if branch is not None and _branch(chosen) != branch:
            raise PromotionError(
                f"{name} version {version} was trained on branch {_branch(chosen)!r}, not {branch!r}: a branch's "
                "model is promoted once the branch is merged and trained there; --any-branch promotes it anyway"
            )
        if math.isnan(_metric(chosen, metric)) and not force:
            raise PromotionError(
                f"{name} version {version} has no {metric} (it was never evaluated: run `dvc repro`); "
                "use --force to promote it anyway"
            )
    elif not evaluated:
        where = f" trained on branch {branch!r}" if branch is not None else ""
        others = len([v for v in versions if not math.isnan(_metric(v, metric))]) - len(evaluated)
        hint = f" ({others} of other branches: --any-branch to consider them)" if others else ""
        raise PromotionError(
            f"no version of {name}{where} has a {metric} tag yet{hint}: run the pipeline (`dvc repro`) first"
        )
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


def champion_files(model: str, client: Any = None) -> tuple[Any, Path]:
    """The ``@champion`` version of ``model`` and its files, downloaded and checked against the digest its
    registrar recorded (``model_files.verified_download``); an error saying how to get one if none is."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    name = REGISTERED_MODELS[model]
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise DigitflowError(
            f"{name} has no @{CHAMPION} in {client.tracking_uri}: promote a version first (`digitflow promote {model}`)"
        ) from None
    return version, verified_download(client, name, version)


# The loaders a champion may name in its MLmodel (the digest check already pins the file; this is a second net).
CHAMPION_LOADERS = {"sklearn": "digitflow.models.sklearn_pyfunc", "torch": "mlflow.pytorch"}


def champion_predictor(model: str, client: Any = None) -> tuple[Predictor, ModelCard]:
    """The registry's ``@champion`` of ``model``, with its card, loaded from its checked files with pickle
    refused (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``): scikit-learn's numbers-only file through this
    package's loader, PyTorch's ``pt2`` archive through torch's restricted unpickler."""
    import mlflow.pyfunc

    _version, folder = champion_files(model, client)
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    pyfunc = mlflow.pyfunc.load_model(str(folder))
    if pyfunc.loader_module != CHAMPION_LOADERS[model]:
        raise DigitflowError(f"{champion_uri(model)} is loaded by {pyfunc.loader_module}, not digitflow's training")
    metadata = pyfunc.metadata.metadata or {}
    if not {"image_shape", "pixel_max", "dataset"} <= set(metadata):
        raise DigitflowError(f"{champion_uri(model)} was not logged by digitflow's training stages (no image metadata)")
    card = ModelCard.from_dict(metadata)
    return (lambda rows: np.asarray(pyfunc.predict(np.asarray(rows, dtype=np.float32)))), card

"""``dvc metrics diff`` and ``dvc params diff`` (their ``--json`` output) as typed rows: the test metrics
of each model, every other numeric metric, and the parameters that changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.names import MODEL_NAMES


@dataclass(frozen=True)
class MetricChange:
    """One metric on both sides; ``None`` where a side does not have it."""

    path: str
    model: str | None
    metric: str
    old: float | None
    new: float | None

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old


@dataclass(frozen=True)
class ParamChange:
    path: str
    param: str
    old: Any
    new: Any


def _number(value: Any) -> float | None:
    """The value if it is a number (ints stay ints, for counts like ``n_iter``), else ``None``."""
    # bool is an int subclass; a flag is not a metric to subtract.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def parse_metrics_diff(
    raw: Mapping[str, Any], test_metrics_file: str = str(paths.EVALUATE_METRICS_FILE)
) -> tuple[list[MetricChange], list[MetricChange]]:
    """Split ``dvc metrics diff --json --all`` into (test metrics per model, every other numeric metric).

    DVC flattens nested keys with dots, so ``metrics/evaluate.json``'s ``{"sklearn": {"test_accuracy"}}``
    arrives as ``sklearn.test_accuracy``. Non-numeric values (MLflow run ids) are dropped: they always
    differ and say nothing about quality.
    """
    test: list[MetricChange] = []
    other: list[MetricChange] = []
    for path, entries in raw.items():
        for key, values in (entries or {}).items():
            old, new = _number(values.get("old")), _number(values.get("new"))
            if old is None and new is None:
                continue
            if Path(path).as_posix() == Path(test_metrics_file).as_posix() and "." in key:
                model, metric = key.split(".", 1)
                test.append(MetricChange(path, model, metric, old, new))
            else:
                other.append(MetricChange(path, None, key, old, new))
    test.sort(key=lambda m: (model_order(m.model), m.metric))
    other.sort(key=lambda m: (m.path, m.metric))
    return test, other


def parse_params_diff(raw: Mapping[str, Any]) -> list[ParamChange]:
    """Rows of ``dvc params diff --json``: only the parameters that differ between the two sides."""
    rows = [
        ParamChange(path, param, values.get("old"), values.get("new"))
        for path, entries in raw.items()
        for param, values in (entries or {}).items()
    ]
    return sorted(rows, key=lambda p: (p.path, p.param))


def model_order(model: str | None) -> tuple[int, str]:
    known = list(MODEL_NAMES)
    return (known.index(model), "") if model in known else (len(known), model or "")

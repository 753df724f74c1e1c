"""The regression gate: each watched test metric of each model may get worse by at most ``max_drop_abs``
(absolute) and ``max_drop_rel`` (fraction of the base value); a metric missing on either side fails.
Losses get worse when they rise (``core.names.lower_is_better``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from digitflow.core.names import MODEL_NAMES, lower_is_better
from digitflow.core.params import GateParams
from digitflow.reporting.pr.cells import fmt, signed
from digitflow.reporting.pr.diff import MetricChange, model_order

# Metric values are written with 6 decimals, and the same run on another machine can end one unit away in
# the last (same machine, same bytes; across machines, equal within 1e-6: docs/faults.md). A drop beyond a
# threshold by no more than that is noise, not a regression. Drops are computed on the decimals written, so
# binary float noise (0.95 - 0.94 > 0.01 as floats) counts for nothing either way.
TOLERANCE = Decimal("0.000001")


@dataclass(frozen=True)
class GateCheck:
    model: str
    metric: str
    old: float | None
    new: float | None
    passed: bool
    message: str


def _decimal(value: float) -> Decimal:
    """A metric or threshold as the decimal number it was written as (a float's shortest repr)."""
    return Decimal(repr(float(value)))


def check_metric(model: str, metric: str, old: float | None, new: float | None, gate: GateParams) -> GateCheck:
    """Decide one (model, metric) pair: worse by more than either threshold, or missing, fails."""
    label = f"{model} {metric}"
    if old is None or new is None:
        sides = [side for side, value in (("base", old), ("new", new)) if value is None]
        where = " and ".join(sides)
        return GateCheck(
            model,
            metric,
            old,
            new,
            False,
            f"{label} is missing on the {where} side{'s' if len(sides) > 1 else ''} "
            f"(base {fmt(old)}, new {fmt(new)}); the gate cannot compare it",
        )
    if not (math.isfinite(old) and math.isfinite(new)):
        return GateCheck(model, metric, old, new, False, f"{label} is not a finite number (base {old}, new {new})")
    worse_by = _decimal(new) - _decimal(old) if lower_is_better(metric) else _decimal(old) - _decimal(new)
    rel_limit = _decimal(gate.max_drop_rel) * abs(_decimal(old))
    verb = "rose" if lower_is_better(metric) else "fell"
    movement = f"{label} {verb} from {fmt(old)} to {fmt(new)} ({signed(new - old)})"
    rel_shown = fmt(float(rel_limit))
    thresholds = f"max_drop_abs {gate.max_drop_abs:g}, max_drop_rel {gate.max_drop_rel:g} (= {rel_shown} here)"
    broken = []
    if worse_by > _decimal(gate.max_drop_abs) + TOLERANCE:
        broken.append(f"max_drop_abs {gate.max_drop_abs:g}")
    if worse_by > rel_limit + TOLERANCE:
        broken.append(f"max_drop_rel {gate.max_drop_rel:g} (= {rel_shown} for base {fmt(old)})")
    if broken:
        return GateCheck(model, metric, old, new, False, f"{movement}, beyond {' and '.join(broken)}")
    if worse_by > 0:
        return GateCheck(model, metric, old, new, True, f"{movement}, within {thresholds}")
    return GateCheck(model, metric, old, new, True, f"{label}: {fmt(old)} -> {fmt(new)}, no regression")


def evaluate_gate(
    test_metrics: Sequence[MetricChange], gate: GateParams, models: Iterable[str] = MODEL_NAMES
) -> list[GateCheck]:
    """One check per watched metric and model.

    The expected models are always checked, so a metric file missing on one side (or a typo in
    ``gate.metrics``) fails instead of passing for lack of anything to compare.
    """
    values = {(m.model, m.metric): m for m in test_metrics}
    all_models = list(dict.fromkeys([*models, *(m.model for m in test_metrics if m.model)]))
    all_models.sort(key=model_order)
    checks = []
    for model in all_models:
        for metric in gate.metrics:
            found = values.get((model, metric))
            checks.append(check_metric(model, metric, found.old if found else None, found.new if found else None, gate))
    return checks


def gate_failure_message(checks: Sequence[GateCheck]) -> str:
    failed = [check for check in checks if not check.passed]
    lines = [f"regression gate failed ({len(failed)} of {len(checks)} checks):"]
    lines += [f"  {check.message}" for check in failed]
    return "\n".join(lines)

"""The regression gate: each watched test metric of each model may get worse by at most ``max_drop_abs``
(absolute) and ``max_drop_rel`` (fraction of the base value); a metric missing on either side fails.
Losses get worse when they rise (``core.names.lower_is_better``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from digitflow.core.names import MODEL_NAMES, lower_is_better
from digitflow.core.params import GateParams
from digitflow.reporting.pr.cells import fmt, signed
from digitflow.reporting.pr.diff import MetricChange, model_order

# Values are written with 6 decimals; a drop equal to the threshold must not fail on float noise.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateCheck:
    model: str
    metric: str
    old: float | None
    new: float | None
    passed: bool
    message: str


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
    worse_by = new - old if lower_is_better(metric) else old - new
    rel_limit = gate.max_drop_rel * abs(old)
    verb = "rose" if lower_is_better(metric) else "fell"
    movement = f"{label} {verb} from {fmt(old)} to {fmt(new)} ({signed(new - old)})"
    thresholds = f"max_drop_abs {gate.max_drop_abs:g}, max_drop_rel {gate.max_drop_rel:g} (= {fmt(rel_limit)} here)"
    broken = []
    if worse_by > gate.max_drop_abs + TOLERANCE:
        broken.append(f"max_drop_abs {gate.max_drop_abs:g}")
    if worse_by > rel_limit + TOLERANCE:
        broken.append(f"max_drop_rel {gate.max_drop_rel:g} (= {fmt(rel_limit)} for base {fmt(old)})")
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

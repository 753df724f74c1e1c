"""The comment itself, GitHub-flavoured Markdown: verdict, gate, metric and parameter tables, images
side by side (relative links, which CML uploads), and the links to each model's MLflow run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digitflow.core.names import model_title
from digitflow.core.params import GateParams
from digitflow.reporting.pr.cells import MISSING, fmt, signed
from digitflow.reporting.pr.diff import MetricChange, ParamChange
from digitflow.reporting.pr.gate import GateCheck


def _param_cell(value: Any) -> str:
    """A parameter as written in YAML terms (``null``, ``1.0``, ``lbfgs``), escaped for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _change_cell(change: MetricChange) -> str:
    if change.old is None or change.new is None:
        return f"**{MISSING} on {'base' if change.old is None else 'new'} side**"
    delta = change.new - change.old
    if change.old != 0:
        return f"{signed(delta)} ({delta / abs(change.old):+.2%})"
    return signed(delta)


def metrics_table(test_metrics: Sequence[MetricChange], checks: Sequence[GateCheck], base_label: str) -> str:
    """Every test metric of every model: base, new, change, and the gate's mark where it watches it."""
    marks = {(c.model, c.metric): ("✅ pass" if c.passed else "❌ **fail**") for c in checks}
    rows = [f"| model | metric | base `{base_label}` | new | change | gate |", "|---|---|---:|---:|---:|:---:|"]
    seen = set()
    for m in test_metrics:
        seen.add((m.model, m.metric))
        rows.append(
            f"| {model_title(m.model or '')} | {m.metric} | {fmt(m.old)} | {fmt(m.new)} "
            f"| {_change_cell(m)} | {marks.get((m.model, m.metric), '')} |"
        )
    # A watched metric absent on both sides has no diff row; it still gets one so its failure shows.
    for check in checks:
        if (check.model, check.metric) not in seen:
            rows.append(
                f"| {model_title(check.model)} | {check.metric} | {MISSING} | {MISSING} "
                f"| **{MISSING} on both sides** | {marks[(check.model, check.metric)]} |"
            )
    return "\n".join(rows)


def other_metrics_table(other: Sequence[MetricChange], base_label: str) -> str:
    rows = [f"| file | metric | base `{base_label}` | new | change |", "|---|---|---:|---:|---:|"]
    rows += [f"| {m.path} | {m.metric} | {fmt(m.old)} | {fmt(m.new)} | {_change_cell(m)} |" for m in other]
    return "\n".join(rows)


def params_table(params: Sequence[ParamChange], base_label: str) -> str:
    """The parameters that differ, or a sentence saying none do."""
    if not params:
        return "No parameter differs from the base."
    rows = [f"| file | param | base `{base_label}` | new |", "|---|---|---|---|"]
    rows += [f"| {p.path} | {p.param} | {_param_cell(p.old)} | {_param_cell(p.new)} |" for p in params]
    return "\n".join(rows)


def _image_or_note(alt: str, link: str | None, note: str) -> str:
    return f"![{alt}]({link})" if link else f"_{note}_"


def side_by_side(title: str, alt: str, base_link: str | None, new_link: str | None, base_label: str) -> str:
    """Two images in a Markdown table: GitHub renders it without any HTML or JavaScript."""
    return "\n".join(
        [
            f"#### {title}",
            "",
            f"| base `{base_label}` | new |",
            "|---|---|",
            f"| {_image_or_note(f'{alt}, base', base_link, 'not at the base revision')} "
            f"| {_image_or_note(f'{alt}, new', new_link, 'not in the workspace')} |",
        ]
    )


@dataclass(frozen=True)
class CommentInputs:
    base_label: str  # what the user asked for, e.g. "main" or "origin/main"
    base_sha: str
    head_sha: str | None
    gate: GateParams
    test_metrics: Sequence[MetricChange]
    other_metrics: Sequence[MetricChange]
    params: Sequence[ParamChange]
    checks: Sequence[GateCheck]
    head_dirty: bool = False
    # ``key: base -> new`` for each gate setting the change edits; the checks used the base's values
    gate_changes: Sequence[str] = ()
    # Markdown linking each model's MLflow run (empty when the runs are not on a server)
    runs_section: str = ""
    # key -> (base image link or None, new image link or None), links relative to the comment
    images: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)


def verdict_line(checks: Sequence[GateCheck]) -> str:
    failed = [c for c in checks if not c.passed]
    if failed:
        return f"**Verdict: ❌ fails the regression gate** ({len(failed)} of {len(checks)} checks failed)"
    return f"**Verdict: ✅ passes the regression gate** ({len(checks)} checks)"


def build_comment(inputs: CommentInputs) -> str:
    """The whole comment as GitHub-flavoured Markdown; images are relative links beside the file."""
    base = inputs.base_label
    gate = inputs.gate
    if inputs.head_sha:
        head = f"`{inputs.head_sha[:8]}`" + (" plus uncommitted changes" if inputs.head_dirty else "")
    else:
        head = "no commit yet"
    lines = [
        "## digitflow: pull-request report",
        "",
        verdict_line(inputs.checks),
        "",
        f"Base: `{base}` (`{inputs.base_sha[:8]}`). New: the workspace this report ran in ({head}); "
        "in CI, the pull request merged into its base after `dvc repro`.",
        "",
        "### Regression gate",
        "",
        f"Watched test metrics: {', '.join(f'`{m}`' for m in gate.metrics)}, for every model. A check fails "
        f"when the new value is worse than the base by more than `max_drop_abs` = {gate.max_drop_abs:g} or by "
        f"more than `max_drop_rel` = {gate.max_drop_rel:g} of the base value (for metrics named `*loss*` a rise "
        "is worse), or when either side lacks the metric. Thresholds: `gate:` in `params.yaml` at the base "
        "revision (a change cannot set the gate that judges it).",
        "",
    ]
    lines += [f"- {'✅' if c.passed else '❌'} {c.message}" for c in inputs.checks]
    if inputs.gate_changes:
        lines += [
            "",
            "> [!WARNING]",
            "> This change edits the gate itself: " + "; ".join(f"`{change}`" for change in inputs.gate_changes) + ".",
            "> The checks above used the base's thresholds; the new ones apply from the next pull request on.",
        ]
    lines += [
        "",
        "### Test metrics",
        "",
        metrics_table(inputs.test_metrics, inputs.checks, base),
        "",
    ]
    if inputs.other_metrics:
        lines += [
            "<details><summary>Training and validation metrics</summary>",
            "",
            other_metrics_table(inputs.other_metrics, base),
            "",
            "</details>",
            "",
        ]
    lines += ["### Parameters", "", params_table(inputs.params, base), ""]
    confusion_keys = [key for key in inputs.images if key.startswith("confusion_")]
    if confusion_keys:
        lines += ["### Confusion matrices (test set)", ""]
        for key in confusion_keys:
            model = key.removeprefix("confusion_")
            title = model_title(model)
            lines += [side_by_side(title, f"{model} confusion matrix", *inputs.images[key], base), ""]
    if "learning_curves" in inputs.images:
        lines += [
            "### Learning curves",
            "",
            side_by_side(
                "PyTorch, loss and accuracy per epoch", "learning curves", *inputs.images["learning_curves"], base
            ),
            "",
        ]
    if inputs.runs_section:
        lines += [inputs.runs_section]
    lines += [f"<sub>Built by `digitflow pr-report --base {base}`.</sub>", ""]
    return "\n".join(lines)

"""The pull-request report: one Markdown comment comparing a branch's results with its base, and a gate.

Everything a reviewer needs to judge a change to the pipeline in one place: the test metrics of both
models (base, new, change), the parameters that changed, confusion matrices and learning curves of
both sides as PNG images, and a verdict from the regression gate configured in ``params.yaml``.

The values come from DVC's own tools (``dvc metrics diff`` and ``dvc params diff``), not from a
re-implementation, so the comment agrees with what a developer sees locally. The metric and plot files
are ``cache: false`` in ``dvc.yaml`` and committed to git, so the base side needs no DVC remote: only
the base commit, which ``resolve_base`` fetches from ``origin`` when a shallow clone lacks it.

The module is pure functions (parse, decide, render) plus a thin runner (``build_pr_report``) that calls
git and the DVC CLI; tests drive the pure parts directly and the runner end to end.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digitflow import paths
from digitflow.errors import DigitflowError
from digitflow.figures import confusion_heatmap, learning_curves
from digitflow.io import save_figure, write_text
from digitflow.params import GateParams, load_params
from digitflow.report import MODEL_TITLES
from digitflow.run_links import mlflow_runs_section

DEFAULT_OUTPUT = paths.REPORTS_DIR / "pr" / "comment.md"
# The hidden marker CML uses to find and update its own comment instead of adding a new one.
WATERMARK_TITLE = "digitflow-pr-report"
# Metric values are written with 6 decimals, and the same run on another machine can end one unit away in
# the last (README: same machine, same bytes; across machines, equal within 1e-6). A drop beyond a threshold
# by no more than that is noise, not a regression. Drops are computed on the decimals written, so binary
# float noise (0.95 - 0.94 > 0.01 as floats) counts for nothing either way.
TOLERANCE = Decimal("0.000001")
MISSING = "missing"


class PrReportError(DigitflowError):
    """The pull-request report could not be built."""


class BaseRevisionError(PrReportError):
    """The base revision is not in this clone and could not be fetched."""


class DvcCommandError(PrReportError):
    """A DVC command the report relies on failed."""


class GateFailedError(PrReportError):
    """A watched metric got worse by more than the gate allows, or is missing on one side."""


# --------------------------------------------------------------------------------------------------
# Parsing DVC's JSON output


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
    test.sort(key=lambda m: (_model_order(m.model), m.metric))
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


def _model_order(model: str | None) -> tuple[int, str]:
    known = list(paths.MODEL_NAMES)
    return (known.index(model), "") if model in known else (len(known), model or "")


# --------------------------------------------------------------------------------------------------
# The gate


def lower_is_better(metric: str) -> bool:
    """Losses worsen when they rise; every other watched metric (accuracy, F1, ...) when it falls."""
    return "loss" in metric.lower()


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
            f"(base {_fmt(old)}, new {_fmt(new)}); the gate cannot compare it",
        )
    if not (math.isfinite(old) and math.isfinite(new)):
        return GateCheck(model, metric, old, new, False, f"{label} is not a finite number (base {old}, new {new})")
    worse_by = _decimal(new) - _decimal(old) if lower_is_better(metric) else _decimal(old) - _decimal(new)
    rel_limit = _decimal(gate.max_drop_rel) * abs(_decimal(old))
    verb = "rose" if lower_is_better(metric) else "fell"
    movement = f"{label} {verb} from {_fmt(old)} to {_fmt(new)} ({_signed(new - old)})"
    rel_shown = _fmt(float(rel_limit))
    thresholds = f"max_drop_abs {gate.max_drop_abs:g}, max_drop_rel {gate.max_drop_rel:g} (= {rel_shown} here)"
    broken = []
    if worse_by > _decimal(gate.max_drop_abs) + TOLERANCE:
        broken.append(f"max_drop_abs {gate.max_drop_abs:g}")
    if worse_by > rel_limit + TOLERANCE:
        broken.append(f"max_drop_rel {gate.max_drop_rel:g} (= {rel_shown} for base {_fmt(old)})")
    if broken:
        return GateCheck(model, metric, old, new, False, f"{movement}, beyond {' and '.join(broken)}")
    if worse_by > 0:
        return GateCheck(model, metric, old, new, True, f"{movement}, within {thresholds}")
    return GateCheck(model, metric, old, new, True, f"{label}: {_fmt(old)} -> {_fmt(new)}, no regression")


def evaluate_gate(
    test_metrics: Sequence[MetricChange], gate: GateParams, models: Iterable[str] = paths.MODEL_NAMES
) -> list[GateCheck]:
    """One check per watched metric and model.

    The expected models are always checked, so a metric file missing on one side (or a typo in
    ``gate.metrics``) fails instead of passing for lack of anything to compare.
    """
    values = {(m.model, m.metric): m for m in test_metrics}
    all_models = list(dict.fromkeys([*models, *(m.model for m in test_metrics if m.model)]))
    all_models.sort(key=_model_order)
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


# --------------------------------------------------------------------------------------------------
# Figures from the committed CSV files


def confusion_counts(pairs: pd.DataFrame, labels: Sequence[Any]) -> np.ndarray:
    """Count matrix (rows actual, columns predicted) from ``actual,predicted`` rows, over fixed labels.

    The labels are shared by the base and new matrices, so the two images are comparable cell by cell
    even when one side never predicted some class.
    """
    missing = {"actual", "predicted"} - set(pairs.columns)
    if missing:
        raise PrReportError(f"confusion file is missing columns {sorted(missing)}")
    table = pd.crosstab(pairs["actual"], pairs["predicted"]).reindex(index=labels, columns=labels, fill_value=0)
    return table.to_numpy(dtype=int)


def read_csv_text(text: str | None) -> pd.DataFrame | None:
    return None if text is None else pd.read_csv(io.StringIO(text))


# --------------------------------------------------------------------------------------------------
# Markdown


def _fmt(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _signed(value: float) -> str:
    return f"{value:+d}" if isinstance(value, int) else f"{value:+.4f}"


def _param_cell(value: Any) -> str:
    """A parameter as written in YAML terms (``null``, ``1.0``, ``lbfgs``), escaped for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _change_cell(change: MetricChange) -> str:
    if change.old is None or change.new is None:
        return f"**{MISSING} on {'base' if change.old is None else 'new'} side**"
    delta = change.new - change.old
    if change.old != 0:
        return f"{_signed(delta)} ({delta / abs(change.old):+.2%})"
    return _signed(delta)


def metrics_table(test_metrics: Sequence[MetricChange], checks: Sequence[GateCheck], base_label: str) -> str:
    """Every test metric of every model: base, new, change, and the gate's mark where it watches it."""
    marks = {(c.model, c.metric): ("✅ pass" if c.passed else "❌ **fail**") for c in checks}
    rows = [f"| model | metric | base `{base_label}` | new | change | gate |", "|---|---|---:|---:|---:|:---:|"]
    seen = set()
    for m in test_metrics:
        seen.add((m.model, m.metric))
        rows.append(
            f"| {MODEL_TITLES.get(m.model or '', m.model)} | {m.metric} | {_fmt(m.old)} | {_fmt(m.new)} "
            f"| {_change_cell(m)} | {marks.get((m.model, m.metric), '')} |"
        )
    # A watched metric absent on both sides has no diff row; it still gets one so its failure shows.
    for check in checks:
        if (check.model, check.metric) not in seen:
            rows.append(
                f"| {MODEL_TITLES.get(check.model, check.model)} | {check.metric} | {MISSING} | {MISSING} "
                f"| **{MISSING} on both sides** | {marks[(check.model, check.metric)]} |"
            )
    return "\n".join(rows)


def other_metrics_table(other: Sequence[MetricChange], base_label: str) -> str:
    rows = [f"| file | metric | base `{base_label}` | new | change |", "|---|---|---:|---:|---:|"]
    rows += [f"| {m.path} | {m.metric} | {_fmt(m.old)} | {_fmt(m.new)} | {_change_cell(m)} |" for m in other]
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
        "is worse), or when either side lacks the metric. Thresholds: `gate:` in `params.yaml`.",
        "",
    ]
    lines += [f"- {'✅' if c.passed else '❌'} {c.message}" for c in inputs.checks]
    if any(p.param.startswith("gate.") for p in inputs.params):
        lines += [
            "",
            "> [!WARNING]",
            "> This change edits the gate's own thresholds (see Parameters); the gate above used the new values.",
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
            title = MODEL_TITLES.get(model, model)
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
    lines += [f"<sub>Built by `python -m stages.pr_report --base {base}`.</sub>", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The runner: git and the DVC CLI

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


def _git_sha(revision: str, run: Runner) -> str | None:
    result = run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"])
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def resolve_base(base: str, run: Runner = _run) -> str:
    """The commit id of ``base``, fetching it from ``origin`` when this clone lacks it.

    CI checkouts are often shallow or single-branch, so the base branch is not there; only then, and only
    if an ``origin`` remote exists, it is fetched (``origin/<base>`` is tried as well, which is where a
    full clone keeps other branches).
    """
    if not base or base.startswith("-"):
        raise BaseRevisionError(f"base revision {base!r} is not a branch, tag or commit name")
    branch = base.removeprefix("origin/")
    candidates = list(dict.fromkeys([base, f"origin/{branch}"]))
    for candidate in candidates:
        sha = _git_sha(candidate, run)
        if sha:
            return sha
    if run(["git", "rev-parse", "--is-inside-work-tree"]).returncode != 0:
        raise BaseRevisionError("not inside a git repository; run from the project's clone")
    shallow = run(["git", "rev-parse", "--is-shallow-repository"]).stdout.strip() == "true"
    has_origin = run(["git", "remote", "get-url", "origin"]).returncode == 0
    fetch_error = ""
    if has_origin:
        fetched = run(["git", "fetch", "--no-tags", "origin", branch])
        if fetched.returncode == 0:
            sha = _git_sha("FETCH_HEAD", run)
            if sha:
                return sha
        fetch_error = f"; `git fetch origin {branch}` failed: {fetched.stderr.strip() or 'no output'}"
    clone = "a shallow clone" if shallow else "this clone"
    remote = "" if has_origin else " and there is no `origin` remote to fetch it from"
    raise BaseRevisionError(
        f"base revision '{base}' is not in {clone}{remote}{fetch_error}. Make the base available: "
        f"`git fetch origin {branch}` (or `git fetch --unshallow` for a shallow clone); in GitHub Actions give "
        "actions/checkout `fetch-depth: 0`."
    )


def dvc_json(args: Sequence[str], run: Runner = _run) -> dict[str, Any]:
    """Run a DVC command with ``--json`` and decode its answer; a failure names the command and why."""
    command = [sys.executable, "-m", "dvc", *args, "--json"]
    result = run(command)
    if result.returncode != 0:
        raise DvcCommandError(f"`dvc {' '.join(args)} --json` failed: {result.stderr.strip() or result.stdout.strip()}")
    try:
        decoded = json.loads(result.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise DvcCommandError(f"`dvc {' '.join(args)} --json` printed something that is not JSON: {exc}") from None
    return decoded if isinstance(decoded, dict) else {}


def read_at_revision(revision: str, path: Path, run: Runner = _run) -> str | None:
    """A file's text at a git revision, or ``None`` if that revision does not have it."""
    result = run(["git", "show", f"{revision}:{Path(path).as_posix()}"])
    return result.stdout if result.returncode == 0 else None


def read_workspace(path: Path) -> str | None:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class PrReport:
    comment: str
    checks: Sequence[GateCheck]
    images: Sequence[Path]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def render_images(
    base_sha: str, output_dir: Path, run: Runner = _run
) -> tuple[dict[str, tuple[str | None, str | None]], list[Path]]:
    """Confusion matrices and learning curves of both sides as PNGs in ``output_dir``.

    The base side is read from git (the files are committed, ``cache: false``), the new side from the
    workspace; a side without the file gets no image and the comment says so.
    """
    links: dict[str, tuple[str | None, str | None]] = {}
    written: list[Path] = []

    def save(figure: Any, name: str) -> str:
        path = output_dir / name
        save_figure(figure, path)
        written.append(path)
        return name

    for model in paths.MODEL_NAMES:
        source = paths.confusion_csv(model)
        frames = {
            "base": read_csv_text(read_at_revision(base_sha, source, run)),
            "new": read_csv_text(read_workspace(source)),
        }
        present = [frame for frame in frames.values() if frame is not None]
        labels = sorted(set().union(*(set(f["actual"]) | set(f["predicted"]) for f in present))) if present else []
        side_links = []
        for side, frame in frames.items():
            if frame is None:
                side_links.append(None)
                continue
            title = f"{MODEL_TITLES[model]} ({side})"
            figure = confusion_heatmap(confusion_counts(frame, labels), [str(label) for label in labels], title)
            side_links.append(save(figure, f"confusion_{model}_{side}.png"))
        links[f"confusion_{model}"] = (side_links[0], side_links[1])
    history = {
        "base": read_csv_text(read_at_revision(base_sha, paths.TORCH_HISTORY_FILE, run)),
        "new": read_csv_text(read_workspace(paths.TORCH_HISTORY_FILE)),
    }
    curve_links = [
        None
        if frame is None
        else save(learning_curves(frame, f"PyTorch learning curves ({side})"), f"learning_curves_{side}.png")
        for side, frame in history.items()
    ]
    links["learning_curves"] = (curve_links[0], curve_links[1])
    return links, written


def build_pr_report(base: str, output: Path = DEFAULT_OUTPUT, run: Runner = _run) -> PrReport:
    """Compare the workspace with ``base``, write the comment and its images, and return the gate's checks.

    Raises nothing for a failing gate: the caller decides (the stage writes the comment first, then exits
    non-zero), so CI can still post the comment that explains the failure.
    """
    gate = load_params().gate
    base_sha = resolve_base(base, run)
    head_sha = _git_sha("HEAD", run)
    head_dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
    test_metrics, other_metrics = parse_metrics_diff(dvc_json(["metrics", "diff", base_sha, "--all"], run))
    params = parse_params_diff(dvc_json(["params", "diff", base_sha, "--targets", str(paths.PARAMS_FILE)], run))
    checks = evaluate_gate(test_metrics, gate)
    output = Path(output)
    links, images = render_images(base_sha, output.parent, run)
    comment = build_comment(
        CommentInputs(
            base_label=base,
            base_sha=base_sha,
            head_sha=head_sha,
            head_dirty=head_dirty,
            gate=gate,
            test_metrics=test_metrics,
            other_metrics=other_metrics,
            params=params,
            checks=checks,
            images=links,
        )
    )
    runs = mlflow_runs_section()  # links to each model's run when the runs are on a server (Team setup)
    comment = comment.replace("<sub>Built by", f"{runs}\n<sub>Built by", 1) if runs else comment
    write_text(output, comment)
    return PrReport(comment=comment, checks=checks, images=images)

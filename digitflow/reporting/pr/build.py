"""The pull-request report, assembled: compare the workspace with a base revision, write the comment and
its images, return the gate's checks (``digitflow pr-report``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from digitflow.core import paths
from digitflow.core.git import commit_id, is_dirty
from digitflow.core.io import write_text
from digitflow.core.params import load_params
from digitflow.reporting.pr.diff import parse_metrics_diff, parse_params_diff
from digitflow.reporting.pr.gate import GateCheck, evaluate_gate, gate_at, gate_changes
from digitflow.reporting.pr.images import render_images
from digitflow.reporting.pr.markdown import CommentInputs, build_comment
from digitflow.reporting.pr.revisions import dvc_json, resolve_base
from digitflow.reporting.pr.run_links import mlflow_runs_section

# The hidden marker CML uses to find and update its own comment instead of adding a new one.
WATERMARK_TITLE = "digitflow-pr-report"


@dataclass(frozen=True)
class PrReport:
    comment: str
    checks: Sequence[GateCheck]
    images: Sequence[Path]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def build_pr_report(base: str, output: Path = paths.PR_COMMENT_FILE) -> PrReport:
    """Compare the workspace with ``base``, write the comment and its images, and return the gate's checks.

    The gate's thresholds are the base revision's; edits to ``gate:`` are listed in the comment and apply
    from the next pull request on. Raises nothing for a failing gate: the caller decides (the stage writes
    the comment first, then exits non-zero), so CI can still post the comment that explains the failure.
    """
    base_sha = resolve_base(base)
    gate = gate_at(base_sha)  # the base's thresholds: a change cannot loosen the gate that judges it
    proposed = gate_changes(gate, load_params().gate)
    head_sha = commit_id("HEAD")
    head_dirty = bool(is_dirty())
    test_metrics, other_metrics = parse_metrics_diff(dvc_json(["metrics", "diff", base_sha, "--all"]))
    params = parse_params_diff(dvc_json(["params", "diff", base_sha, "--targets", str(paths.PARAMS_FILE)]))
    checks = evaluate_gate(test_metrics, gate)
    output = Path(output)
    links, images = render_images(base_sha, output.parent)
    comment = build_comment(
        CommentInputs(
            base_label=base,
            base_sha=base_sha,
            head_sha=head_sha,
            head_dirty=head_dirty,
            gate=gate,
            gate_changes=proposed,
            test_metrics=test_metrics,
            other_metrics=other_metrics,
            params=params,
            checks=checks,
            images=links,
            runs_section=mlflow_runs_section(),  # links to each model's run when the runs are on a server
        )
    )
    write_text(output, comment)
    return PrReport(comment=comment, checks=checks, images=images)

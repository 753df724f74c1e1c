"""The pull-request report: parsing DVC's diffs, the regression gate, the comment, and the real command."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from digitflow.core.names import lower_is_better
from digitflow.core.params import GateParams
from digitflow.reporting.pr.diff import MetricChange, ParamChange, parse_metrics_diff, parse_params_diff
from digitflow.reporting.pr.errors import BaseRevisionError, DvcCommandError
from digitflow.reporting.pr.gate import check_metric, evaluate_gate, gate_failure_message
from digitflow.reporting.pr.images import confusion_counts
from digitflow.reporting.pr.markdown import CommentInputs, build_comment
from digitflow.reporting.pr.revisions import dvc_json, resolve_base
from tests.conftest import git, run

STRICT = GateParams(metrics=["test_accuracy"], max_drop_abs=0.01, max_drop_rel=1.0)


def change(model: str, metric: str, old: float | None, new: float | None) -> MetricChange:
    return MetricChange("metrics/evaluate.json", model, metric, old, new)


# --------------------------------------------------------------------------------------------------
# Parsing


def test_metrics_diff_is_split_by_model_and_drops_run_ids() -> None:
    raw = {
        "metrics/evaluate.json": {
            "torch.test_accuracy": {"old": 0.95, "new": 0.9, "diff": -0.05},
            "sklearn.test_accuracy": {"old": 0.95, "new": 0.96, "diff": 0.01},
            "sklearn.test_f1_macro": {"old": 0.94, "new": None},
        },
        "metrics/train_sklearn.json": {
            "n_iter": {"old": 33, "new": 40, "diff": 7},
            "mlflow_run_id": {"old": "abc", "new": "def"},
        },
    }
    test, other = parse_metrics_diff(raw)
    assert [(m.model, m.metric, m.old, m.new) for m in test] == [
        ("sklearn", "test_accuracy", 0.95, 0.96),
        ("sklearn", "test_f1_macro", 0.94, None),
        ("torch", "test_accuracy", 0.95, 0.9),
    ]
    assert [(m.path, m.metric, m.old, m.new) for m in other] == [("metrics/train_sklearn.json", "n_iter", 33, 40)]
    assert test[2].change == pytest.approx(-0.05)
    assert test[1].change is None


def test_params_diff_rows() -> None:
    raw = {"params.yaml": {"train_torch.lr": {"old": 0.003, "new": 0.01}, "train_sklearn.class_weight": {"old": None}}}
    assert parse_params_diff(raw) == [
        ParamChange("params.yaml", "train_sklearn.class_weight", None, None),
        ParamChange("params.yaml", "train_torch.lr", 0.003, 0.01),
    ]


# --------------------------------------------------------------------------------------------------
# The gate


def test_absolute_drop_beyond_threshold_fails_and_names_everything() -> None:
    check = check_metric("torch", "test_accuracy", 0.95, 0.93, STRICT)
    assert not check.passed
    for part in ("torch", "test_accuracy", "0.9500", "0.9300", "-0.0200", "max_drop_abs 0.01"):
        assert part in check.message


def test_drop_equal_to_threshold_passes_despite_float_noise() -> None:
    assert 0.95 - 0.94 > 0.01  # the float noise this guards against
    assert check_metric("torch", "test_accuracy", 0.95, 0.94, STRICT).passed


def test_the_gate_forgives_1e6_beyond_a_threshold_and_nothing_more() -> None:
    """Another machine may write a metric one unit away in its 6th decimal (README: equal within 1e-6):
    a drop beyond a threshold by that much passes, by twice that fails, for each threshold and direction."""
    assert check_metric("torch", "test_accuracy", 0.95, 0.939999, STRICT).passed  # 0.010001
    assert not check_metric("torch", "test_accuracy", 0.95, 0.939998, STRICT).passed  # 0.010002
    loss = GateParams(metrics=["test_log_loss"], max_drop_abs=0.01, max_drop_rel=1.0)
    assert check_metric("torch", "test_log_loss", 0.18, 0.190001, loss).passed
    assert not check_metric("torch", "test_log_loss", 0.18, 0.190002, loss).passed
    relative = GateParams(metrics=["test_accuracy"], max_drop_abs=1.0, max_drop_rel=0.02)  # 0.006 of 0.30
    assert check_metric("sklearn", "test_accuracy", 0.30, 0.293999, relative).passed
    assert not check_metric("sklearn", "test_accuracy", 0.30, 0.293998, relative).passed


def test_relative_threshold_catches_a_small_absolute_drop_from_a_low_base() -> None:
    gate = GateParams(metrics=["test_accuracy"], max_drop_abs=0.05, max_drop_rel=0.02)
    low = check_metric("sklearn", "test_accuracy", 0.30, 0.29, gate)  # 3.3% of 0.30, only 0.01 absolute
    assert not low.passed
    assert "max_drop_rel 0.02" in low.message
    assert "max_drop_abs" not in low.message.split("beyond", 1)[1]
    assert check_metric("sklearn", "test_accuracy", 0.95, 0.94, gate).passed  # 1.05% of 0.95


def test_loss_worsens_when_it_rises() -> None:
    gate = GateParams(metrics=["test_log_loss"], max_drop_abs=0.01, max_drop_rel=1.0)
    assert lower_is_better("test_log_loss")
    assert not lower_is_better("test_accuracy")
    rose = check_metric("sklearn", "test_log_loss", 0.18, 0.25, gate)
    assert not rose.passed
    assert "rose from 0.1800 to 0.2500" in rose.message
    assert check_metric("sklearn", "test_log_loss", 0.25, 0.18, gate).passed
    # The same change on an accuracy is a big improvement, which passes.
    assert check_metric("sklearn", "test_accuracy", 0.18, 0.25, STRICT).passed


def test_not_a_number_fails() -> None:
    assert not check_metric("torch", "test_accuracy", 0.95, math.nan, STRICT).passed


def test_metric_missing_on_one_side_fails() -> None:
    metrics = [change("sklearn", "test_accuracy", 0.95, 0.95), change("torch", "test_accuracy", 0.95, None)]
    checks = evaluate_gate(metrics, STRICT)
    assert [(c.model, c.passed) for c in checks] == [("sklearn", True), ("torch", False)]
    assert "missing on the new side" in checks[1].message


def test_watched_metric_absent_everywhere_fails_for_every_model() -> None:
    # A typo in gate.metrics, or no metrics file on either side, must not pass for lack of data.
    gate = GateParams(metrics=["test_acuracy"], max_drop_abs=0.01, max_drop_rel=0.02)
    checks = evaluate_gate([change("sklearn", "test_accuracy", 0.9, 0.9)], gate)
    assert [(c.model, c.passed) for c in checks] == [("sklearn", False), ("torch", False)]
    assert all("missing on the base and new sides" in c.message for c in checks)
    assert [(c.model, c.passed) for c in evaluate_gate([], STRICT)] == [("sklearn", False), ("torch", False)]


def test_failure_message_lists_only_failures() -> None:
    checks = evaluate_gate(
        [change("sklearn", "test_accuracy", 0.95, 0.95), change("torch", "test_accuracy", 0.95, 0.80)], STRICT
    )
    message = gate_failure_message(checks)
    assert message.startswith("regression gate failed (1 of 2 checks)")
    assert "torch test_accuracy fell from 0.9500 to 0.8000" in message
    assert "sklearn" not in message


# --------------------------------------------------------------------------------------------------
# The comment


def comment_for(metrics: list[MetricChange], params: list[ParamChange], gate: GateParams = STRICT) -> str:
    return build_comment(
        CommentInputs(
            base_label="main",
            base_sha="a" * 40,
            head_sha="b" * 40,
            gate=gate,
            test_metrics=metrics,
            other_metrics=[],
            params=params,
            checks=evaluate_gate(metrics, gate),
            images={
                "confusion_sklearn": ("confusion_sklearn_base.png", "confusion_sklearn_new.png"),
                "learning_curves": (None, "learning_curves_new.png"),
            },
        )
    )


def test_comment_has_values_changes_params_images_and_verdict() -> None:
    metrics = [
        change("sklearn", "test_accuracy", 0.956522, 0.961353),
        change("sklearn", "test_log_loss", 0.183889, None),
        change("torch", "test_accuracy", 0.956522, 0.956522),
    ]
    comment = comment_for(metrics, [ParamChange("params.yaml", "train_sklearn.C", 1.0, 0.5)])
    assert "**Verdict: ✅ passes the regression gate** (2 checks)" in comment
    assert (
        "| scikit-learn LogisticRegression | test_accuracy | 0.9565 | 0.9614 | +0.0048 (+0.51%) | ✅ pass |" in comment
    )
    assert (
        "| scikit-learn LogisticRegression | test_log_loss | 0.1839 | missing | **missing on new side** |  |" in comment
    )
    assert "| params.yaml | train_sklearn.C | 1.0 | 0.5 |" in comment
    assert "![sklearn confusion matrix, base](confusion_sklearn_base.png)" in comment
    assert "![learning curves, new](learning_curves_new.png)" in comment
    assert "_not at the base revision_" in comment
    assert "<script" not in comment
    assert "[!WARNING]" not in comment


def test_comment_flags_failure_and_edited_gate() -> None:
    metrics = [change("sklearn", "test_accuracy", 0.95, 0.95), change("torch", "test_accuracy", 0.95, 0.5)]
    comment = comment_for(metrics, [ParamChange("params.yaml", "gate.max_drop_abs", 0.01, 0.5)])
    assert "**Verdict: ❌ fails the regression gate** (1 of 2 checks failed)" in comment
    assert "❌ torch test_accuracy fell from 0.9500 to 0.5000" in comment
    assert (
        "| PyTorch logistic regression | test_accuracy | 0.9500 | 0.5000 | -0.4500 (-47.37%) | ❌ **fail** |" in comment
    )
    assert "edits the gate's own thresholds" in comment


def test_comment_has_a_row_for_a_watched_metric_missing_on_both_sides() -> None:
    comment = comment_for([], [])
    assert "| PyTorch logistic regression | test_accuracy | missing | missing | **missing on both sides** |" in comment
    assert "No parameter differs from the base." in comment


def test_confusion_counts_use_the_shared_labels() -> None:
    pairs = pd.DataFrame({"actual": [0, 0, 1, 2], "predicted": [0, 1, 1, 1]})
    assert confusion_counts(pairs, [0, 1, 2, 3]).tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]


# --------------------------------------------------------------------------------------------------
# Finding the base revision (real git, no DVC)


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A repository with a `main` and a `feature` branch that has one more commit."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "tests@digitflow.local")
    git(repo, "config", "user.name", "digitflow tests")
    commit_file(repo, "a.txt", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    commit_file(repo, "b.txt", "change")
    return repo


def test_base_is_resolved_locally(upstream: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(upstream)
    assert resolve_base("main") == git(upstream, "rev-parse", "main").strip()


def test_missing_base_is_fetched_from_origin_in_a_shallow_clone(
    upstream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", "feature", upstream.as_uri(), str(clone)],
        check=True,
    )
    assert subprocess.run(["git", "rev-parse", "--verify", "--quiet", "main"], cwd=clone).returncode != 0
    monkeypatch.chdir(clone)
    assert resolve_base("main") == git(upstream, "rev-parse", "main").strip()
    assert resolve_base("origin/main") == git(upstream, "rev-parse", "main").strip()


def test_missing_base_without_origin_says_how_to_fix(upstream: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(upstream)
    with pytest.raises(BaseRevisionError) as error:
        resolve_base("release")
    message = str(error.value)
    for part in ("'release'", "no `origin` remote", "git fetch --unshallow", "fetch-depth: 0"):
        assert part in message


@pytest.mark.parametrize("base", ["", "--upload-pack=touch pwned"])
def test_base_that_looks_like_an_option_is_refused(base: str, upstream: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(upstream)
    with pytest.raises(BaseRevisionError, match="is not a branch, tag or commit name"):
        resolve_base(base)
    assert not (upstream / "pwned").exists()


def test_dvc_failure_is_a_clean_error() -> None:
    def failing(command: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 255, "", "ERROR: unknown Git revision 'nope'")

    with pytest.raises(DvcCommandError, match=r"`dvc metrics diff nope --json` failed: ERROR: unknown Git revision"):
        dvc_json(["metrics", "diff", "nope"], failing)


def test_command_reports_a_missing_base(project_copy: Path) -> None:
    result = run(project_copy, "digitflow", "pr-report", "--base", "no-such-branch", check=False)
    assert result.returncode == 1
    assert "[digitflow pr-report] error: base revision 'no-such-branch' is not in this clone" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project_copy / "reports" / "pr" / "comment.md").exists()

"""End to end: real `dvc repro` on main and on a branch that weakens the PyTorch model; the comment and the gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from digitflow.core.params import GateParams
from tests.conftest import copy_project, git, run
from tests.support.project import set_params
from tests.support.readme import readme_command

STRICT = GateParams(metrics=["test_accuracy"], max_drop_abs=0.01, max_drop_rel=1.0)


@pytest.fixture(scope="module")
def pr_project(reproduced_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Baseline results committed on `main` (the session's reproduced project, copied), then a branch whose
    PyTorch model trains for one tiny step."""
    project = copy_project(reproduced_digits, tmp_path_factory.mktemp("pr") / "project")
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", "baseline results")
    git(project, "checkout", "-q", "-b", "weaker-torch")
    set_params(project, train_torch={"lr": 0.0001, "digits": {"epochs": 1}})
    run(project, "dvc", "repro")
    return project


def evaluate_json(project: Path, revision: str | None = None) -> dict:
    if revision:
        return json.loads(git(project, "show", f"{revision}:metrics/evaluate.json"))
    return json.loads((project / "metrics" / "evaluate.json").read_text())


def image_links(comment: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", comment)


@pytest.mark.e2e
def test_weaker_model_fails_the_gate_with_a_full_comment(pr_project: Path) -> None:
    result = run(pr_project, "bash", "-c", readme_command("digitflow pr-report"), check=False)
    base, new = evaluate_json(pr_project, "main"), evaluate_json(pr_project)
    assert new["torch"]["test_accuracy"] < base["torch"]["test_accuracy"] - 0.01, "the change should hurt PyTorch"

    assert result.returncode == 1, result.stderr
    assert (
        f"torch test_accuracy fell from {base['torch']['test_accuracy']:.4f} to {new['torch']['test_accuracy']:.4f}"
        in result.stderr
    )
    assert "max_drop_abs 0.01" in result.stderr
    assert "sklearn test_accuracy" not in result.stderr  # sklearn did not change

    out = pr_project / "reports" / "pr"
    comment = (out / "comment.md").read_text()
    assert "**Verdict: ❌ fails the regression gate** (1 of 2 checks failed)" in comment
    for model, title in (("sklearn", "scikit-learn LogisticRegression"), ("torch", "PyTorch logistic regression")):
        for metric, old in base[model].items():
            value = new[model][metric]
            row = f"| {title} | {metric} | {old:.4f} | {value:.4f} | {value - old:+.4f}"
            assert row in comment, f"no row {row!r} in\n{comment}"
    assert "| params.yaml | train_torch.digits.epochs | 50 | 1 |" in comment
    base_lr = yaml.safe_load(git(pr_project, "show", "main:params.yaml"))["train_torch"]["lr"]
    assert f"| params.yaml | train_torch.lr | {base_lr} | 0.0001 |" in comment
    links = image_links(comment)
    assert sorted(links) == sorted(
        f"{name}_{side}.png"
        for name in ("confusion_sklearn", "confusion_torch", "learning_curves")
        for side in ("base", "new")
    )
    for link in links:
        assert (out / link).read_bytes().startswith(b"\x89PNG"), link


@pytest.mark.e2e
def test_loose_gate_passes_and_is_flagged(pr_project: Path) -> None:
    params_file = pr_project / "params.yaml"
    original = params_file.read_text()
    try:
        set_params(pr_project, gate={"max_drop_abs": 1.0, "max_drop_rel": 1.0})
        result = run(pr_project, "digitflow", "pr-report", "--base", "main", "--output", "out/comment.md", check=False)
    finally:
        params_file.write_text(original)
    assert result.returncode == 0, result.stderr
    comment = (pr_project / "out" / "comment.md").read_text()
    assert "**Verdict: ✅ passes the regression gate** (2 checks)" in comment
    assert "| params.yaml | gate.max_drop_abs | 0.01 | 1.0 |" in comment
    assert "edits the gate's own thresholds" in comment
    assert all((pr_project / "out" / link).is_file() for link in image_links(comment))

"""The GitHub workflows: valid, least-privileged, pinned, injection-free, and wired to the PR report."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from digitflow.core.paths import PR_COMMENT_FILE
from digitflow.reporting.pr.build import WATERMARK_TITLE
from tests.support.extras import program

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
PR_REPORT = WORKFLOWS_DIR / "pr-report.yml"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job.get("steps", [])]


def test_there_are_workflows() -> None:
    assert PR_REPORT in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "grant nothing at the top level"
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"job {name} must state its permissions"
        assert set(permissions.values()) <= {"read", "write", "none"}
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes <= {"pull-requests"}, f"job {name} writes {writes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_checkout_keeps_no_credentials(path: Path) -> None:
    for job, step in steps(load(path)):
        if "uses" not in step:
            continue
        assert PINNED.match(step["uses"]), f"{job}: {step['uses']} is not pinned to a full commit SHA"
        if step["uses"].startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{job}: checkout persists credentials"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expressions_inside_shell_scripts(path: Path) -> None:
    # Expressions are expanded into the script before the shell sees it: a crafted branch name or PR
    # title would run as code. Values reach scripts through `env:` instead.
    for job, step in steps(load(path)):
        assert "${{" not in step.get("run", ""), f"{job}: expression inside run: {step['run']!r}"


def test_pr_report_job_compares_with_the_base_and_keeps_one_comment() -> None:
    workflow = load(PR_REPORT)
    triggers = workflow.get("on", workflow.get(True))  # PyYAML reads the bare key `on` as True
    assert "pull_request" in triggers
    report = workflow["jobs"]["report"]
    assert report["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0, "the base branch's metrics are needed"
    runs = [s for s in report["steps"] if "run" in s]
    commands = [s["run"] for s in runs]
    repro = next(i for i, c in enumerate(commands) if c.strip() == "dvc repro")
    build = next(i for i, c in enumerate(commands) if "digitflow pr-report" in c)
    comment = next(i for i, c in enumerate(commands) if "cml comment update" in c)
    assert repro < build < comment
    assert f"--output {PR_COMMENT_FILE.as_posix()}" in commands[build]
    assert runs[build]["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert f"--watermark-title={WATERMARK_TITLE!r}".replace("'", '"') in commands[comment]
    assert commands[comment].rstrip().endswith(PR_COMMENT_FILE.as_posix())
    assert "!cancelled()" in runs[comment]["if"], "the comment must be posted when the gate fails"
    assert any(s.get("uses", "").startswith("iterative/setup-cml@") for s in report["steps"])
    assert "pull-requests" not in workflow["jobs"]["checks"]["permissions"]


def test_checks_job_runs_ruff_and_tests() -> None:
    commands = "\n".join(s.get("run", "") for s in load(PR_REPORT)["jobs"]["checks"]["steps"])
    assert "ruff check" in commands
    assert "ruff format --check" in commands
    assert "python -m pytest" in commands


@pytest.mark.test_tools
def test_workflows_match_the_github_schema() -> None:
    result = subprocess.run(
        [program("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.test_tools
def test_zizmor_finds_nothing() -> None:
    result = subprocess.run(
        [program("zizmor"), "--offline", "--no-progress", str(WORKFLOWS_DIR)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_report_job_uses_the_team_remote_and_server_only_when_configured(tmp_path: Path) -> None:
    runs = [s for s in load(PR_REPORT)["jobs"]["report"]["steps"] if "run" in s]
    pull = next(i for i, s in enumerate(runs) if "dvc pull" in s["run"])
    repro = next(i for i, s in enumerate(runs) if s["run"].strip() == "dvc repro")
    build = next(i for i, s in enumerate(runs) if "digitflow pr-report" in s["run"])
    assert pull < repro, "pull before reproducing, so only changed stages run"
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert runs[repro]["env"][variable] == f"${{{{ secrets.{variable} }}}}"
    assert runs[build]["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}", "links the runs"
    # Without secrets (a fork, or no team setup) the pull step is a no-op that succeeds; keys without the
    # remote's URL (which has no default) get a warning.
    result = subprocess.run(
        ["bash", "-e", "-c", runs[pull]["run"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **{key: "" for key in runs[pull]["env"]}, "AWS_ACCESS_KEY_ID": "AKIA..."},
    )
    assert result.returncode == 0, result.stderr
    assert "every stage runs" in result.stdout
    assert "::warning::DVC_REMOTE_ACCESS_KEY_ID is set but DVC_REMOTE_URL is not" in result.stdout


def test_report_job_adds_the_team_remote_from_its_url(tmp_path: Path) -> None:
    """With DVC_REMOTE_URL (here a local folder) the pull step adds the `team` remote to the runner's
    .dvc/config.local as the default, with hash checks on download, and pulls; the committed
    .dvc/config (which names no remote) is left as it was."""
    from configobj import ConfigObj

    step = next(s for s in load(PR_REPORT)["jobs"]["report"]["steps"] if "dvc pull" in s.get("run", ""))
    assert 'dvc remote add --local -d team "$DVC_REMOTE_URL"' in step["run"]
    repo = tmp_path / "checkout"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([program("dvc"), "init", "-q"], cwd=repo, check=True)
    committed = (repo / ".dvc/config").read_text()
    env = {key: "" for key in step["env"]} | {"DVC_REMOTE_URL": str(tmp_path / "remote")}
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": f"{Path(program('dvc')).parent}:/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    local = ConfigObj(str(repo / ".dvc/config.local"))
    assert local["core"]["remote"] == "team"
    assert local['remote "team"'] == {"url": str(tmp_path / "remote"), "verify": "true"}
    assert (repo / ".dvc/config").read_text() == committed

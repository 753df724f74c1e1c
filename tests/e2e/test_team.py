"""The team stack end to end, on real services bound to 127.0.0.1: Debian's PostgreSQL, SeaweedFS (S3)
and an MLflow server with basic auth, started and stopped by ``digitflow stack``.

The digits pipeline logs to the server as a user with EDIT; a READ-only user is refused (403) and a
wrong password gets the project's message; DVC pushes to the S3 remote and a fresh clone pulls and
reproduces nothing; the stack keeps its data across a restart and stops with no process left.
Skipped, with the reason, outside CI where PostgreSQL or the team extra is missing; in CI they must run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from digitflow.core import names, paths
from digitflow.team.config import ARTIFACTS_BUCKET, CONFIG_NAME, StackConfig, load_config, port_is_free
from digitflow.team.supervisor import group_members, read_pid
from digitflow.tracking.links import COMPARISON
from tests.conftest import PROJECT_ROOT, git, run
from tests.support import project as testing
from tests.support.readme import readme_command

pytestmark = [pytest.mark.team, pytest.mark.e2e]

BOB = ("bob", "at-least-12-chars")  # READ only, the README's second user
SERVICES = ("mlflow", "seaweedfs")


def missing_requirements() -> list[str]:
    """What the stack needs beyond the team extra (which the `team` marker checks: tests/support/extras.py)."""
    return [] if shutil.which("pg_lsclusters") else ["PostgreSQL (sudo apt-get install -y postgresql)"]


@dataclass
class Stack:
    state: Path
    name: str
    config: StackConfig
    alice: tuple[str, str] = ("alice", "")  # EDIT on the experiment; the password `add-user` generated

    @property
    def env(self) -> dict[str, str]:
        """What points the README's `digitflow stack ...` commands at this test's stack."""
        return {"DIGITFLOW_STACK_DIR": str(self.state), "DIGITFLOW_STACK_NAME": self.name}

    def readme(self, start: str, cwd: Path = PROJECT_ROOT, **env: str) -> str:
        """The README command starting with ``start``, exactly as written, run by the shell in ``cwd``."""
        return run(cwd, "bash", "-c", readme_command(start), **self.env, **env).stdout

    def client_env(self, user: tuple[str, str]) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.config.mlflow_url,
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        }

    def client(self, user: tuple[str, str]) -> Any:
        import mlflow

        os.environ.update(self.client_env(user))
        return mlflow.MlflowClient(self.config.mlflow_url)

    def pids(self) -> list[int]:
        return [pid for name in SERVICES if (pid := read_pid(self.state / f"{name}.pid"))]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The README's `up` and `add-user` commands as written, with the state folder and the name in the
    environment: its own role and databases, beside any developer's stack."""
    missing = missing_requirements()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the team tests; missing: {', '.join(missing)}")
        pytest.skip(f"the team stack needs: {', '.join(missing)}")
    state = tmp_path_factory.mktemp("stack")
    stack = Stack(state, f"dftest_{secrets.token_hex(3)}", StackConfig())
    try:
        shown = stack.readme("digitflow stack up")
        stack.config = load_config(state)
        assert f"MLflow     {stack.config.mlflow_url}" in shown
        assert f"(databases {stack.name}_mlflow, {stack.name}_auth)" in shown
        added = stack.readme("digitflow stack add-user alice")
        assert "user 'alice': EDIT on experiment 'digitflow'" in added
        stack.alice = ("alice", added.split("password: ")[1].strip())
        assert f"--password '{BOB[1]}'" in readme_command("digitflow stack add-user bob")
        assert "user 'bob': READ" in stack.readme("digitflow stack add-user bob")
        yield stack
    finally:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)
        # check=False: after a failed `up` there may be nothing to stop, and its error is the one to see.
        down = run(PROJECT_ROOT, "digitflow", "stack", "--state-dir", str(state), "down", "--purge",
                   check=False)  # fmt: skip
        assert down.returncode == 0 or not (state / CONFIG_NAME).exists(), down.stderr


README_TEAM_RUN = (  # run in one shell, as a user types them: the exports of `eval` reach `dvc repro`
    'eval "$(digitflow stack env)"',
    "digitflow stack dvc-remote",
    "dvc repro && dvc push",
)


@pytest.fixture(scope="module")
def team_project(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy whose pipeline ran and pushed by the README's commands, logging to the server."""
    # 10 epochs instead of 50: the same logging, a fifth of the training time.
    destination = tmp_path_factory.mktemp("team") / "project"
    project = testing.make_project_copy(PROJECT_ROOT, destination, train_torch={"digits": {"epochs": 10}})
    script = "\n".join(["set -e", *(readme_command(command) for command in README_TEAM_RUN)])
    result = run(project, "bash", "-c", script, **stack.env)
    assert "DVC remote 'team' (s3://digitflow-dvc) is this clone's default, at the stack" in result.stdout
    assert "secret_access_key" in (project / ".dvc/config.local").read_text()
    assert "Running stage 'train_torch'" in result.stdout
    return project


def run_ids(project: Path) -> dict[str, str]:
    """Each model's MLflow run, as the training stages recorded it for DVC."""
    files = {model: project / paths.training_record_file(model) for model in names.MODEL_NAMES}
    return {model: json.loads(path.read_text())[model]["mlflow_run_id"] for model, path in files.items()}


def test_pipeline_logs_both_runs_to_the_server(stack: Stack, team_project: Path, tmp_path: Path) -> None:
    import boto3
    import mlflow

    client = stack.client(stack.alice)
    evaluated = json.loads((team_project / "metrics/evaluate.json").read_text())
    for model, run_id in run_ids(team_project).items():
        found = client.get_run(run_id)
        assert found.info.status == "FINISHED"
        assert found.info.artifact_uri.startswith("mlflow-artifacts:/"), "artifacts go through the server"
        assert found.data.tags["digitflow.stage"] == f"train_{model}"
        assert found.data.metrics["test_accuracy"] == pytest.approx(evaluated[model]["test_accuracy"])
        assert "val_accuracy" in found.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"val_confusion_matrix.png", "test_confusion_matrix.json", "test_classification_report.json"} <= (
            artifacts
        )
        (tmp_path / model).mkdir()
        matrix = Path(client.download_artifacts(run_id, "test_confusion_matrix.json", str(tmp_path / model)))
        assert sum(map(sum, json.loads(matrix.read_text())["matrix"])) == 414, "digits' 414 test images"
        # The registry works on the server as on the embedded store: a version per run, test metrics on it.
        (version,) = client.search_model_versions(f"name = 'digitflow-{model}' and run_id = '{run_id}'")
        assert float(version.tags["test_accuracy"]) == pytest.approx(evaluated[model]["test_accuracy"])
    model = mlflow.sklearn.load_model(f"runs:/{run_ids(team_project)['sklearn']}/model")
    assert hasattr(model, "predict_proba")
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.config.s3_url,
        aws_access_key_id=stack.config.s3_access_key,
        aws_secret_access_key=stack.config.s3_secret_key,
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, MaxKeys=1000).get("Contents", [])]
    assert any(key.endswith("val_confusion_matrix.png") for key in keys), "artifacts are stored in S3"


def test_user_without_permission_is_refused_and_nothing_is_logged(stack: Stack, team_project: Path) -> None:
    from mlflow.exceptions import MlflowException

    admin = stack.client((stack.config.admin_username, stack.config.admin_password))
    experiment = admin.get_experiment_by_name("digitflow")
    # alice, added by the README's `add-user alice` with its generated password, may log (EDIT).
    allowed = stack.client(stack.alice).create_run(experiment.experiment_id)
    admin = stack.client((stack.config.admin_username, stack.config.admin_password))  # back to the admin
    admin.delete_run(allowed.info.run_id)  # deleting needs MANAGE, which alice does not have
    before = len(admin.search_runs([experiment.experiment_id], max_results=1000))
    outputs = [team_project / "metrics/train_sklearn.json", team_project / "metrics/runs/sklearn.json"]
    saved = [path.read_bytes() for path in outputs]

    with pytest.raises(MlflowException) as refused:
        stack.client(BOB).create_run(experiment.experiment_id)
    assert refused.value.get_http_status_code() == 403

    result = run(team_project, sys.executable, "-m", "stages.train_sklearn", check=False, **stack.client_env(BOB))
    assert result.returncode == 1
    assert "user 'bob' may not log to experiment 'digitflow'" in result.stderr
    assert "(403)" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(admin.search_runs([experiment.experiment_id], max_results=1000)) == before
    assert [path.read_bytes() for path in outputs] == saved
    assert stack.client(BOB).get_run(run_ids(team_project)["sklearn"]).info.status == "FINISHED", "bob may read"


def test_wrong_password_gets_one_clear_message(stack: Stack, team_project: Path) -> None:
    env = stack.client_env(("alice", "not-the-password"))
    result = run(team_project, sys.executable, "-m", "stages.train_sklearn", check=False, **env)
    assert result.returncode == 1
    assert "refused the password of user 'alice' (401)" in result.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_dvc_push_then_a_fresh_clone_pulls_and_reproduces_nothing(
    stack: Stack, team_project: Path, tmp_path: Path
) -> None:
    """The README's "fresh clone" commands, as written: clone (the repository in $DIGITFLOW_REPO), point
    the DVC remote at the stack, pull, `dvc repro` runs nothing, `dvc exp show --keep ...` has both run ids."""
    git(team_project, "add", "-A")
    git(team_project, "commit", "-q", "-m", "reproduced")
    assert "secret_access_key" not in (team_project / ".dvc/config").read_text(), "no secret in the committed config"

    stack.readme("git clone", cwd=tmp_path, DIGITFLOW_REPO=str(team_project))
    clone = tmp_path / "digitflow"
    stack.readme("digitflow stack dvc-remote", cwd=clone)
    stack.readme("dvc pull", cwd=clone)
    assert (clone / "models/torch/model.pt").read_bytes() == (team_project / "models/torch/model.pt").read_bytes()
    repro = stack.readme("dvc repro", cwd=clone, **stack.client_env(stack.alice))
    assert "Running stage" not in repro
    assert "Data and pipelines are up to date" in repro
    shown = stack.readme(
        "dvc exp show --keep 'Experiment|(sklearn|torch)\\.(test_accuracy|mlflow_run_id)'", cwd=clone, COLUMNS="250"
    )
    header = next(line for line in shown.splitlines() if "Experiment" in line).split()
    columns = [
        "Experiment",
        "sklearn.test_accuracy",
        "torch.test_accuracy",
        "sklearn.mlflow_run_id",
        "torch.mlflow_run_id",
    ]
    assert sorted(header) == sorted(columns), shown
    (main,) = [line.split() for line in shown.splitlines() if line.split()[:1] == ["main"]]
    values = dict(zip(header, main, strict=True))
    evaluated = json.loads((team_project / "metrics/evaluate.json").read_text())
    for model, run_id in run_ids(team_project).items():
        assert values[f"{model}.mlflow_run_id"] == run_id, shown
        assert float(values[f"{model}.test_accuracy"]) == pytest.approx(evaluated[model]["test_accuracy"], abs=1e-5)


def test_pr_comment_links_each_model_run_on_the_server(stack: Stack, team_project: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": stack.config.mlflow_url}
    run(team_project, "digitflow", "pr-report", "--base", "main", **env)
    comment = (team_project / "reports/pr/comment.md").read_text()
    assert "### MLflow runs" in comment
    client = stack.client(stack.alice)
    for run_id in run_ids(team_project).values():
        experiment_id = client.get_run(run_id).info.experiment_id
        page = f"{stack.config.mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}"
        assert f"({page}?workflowType=machine_learning)" in comment


def test_digitflow_ui_on_the_server_prints_its_addresses(stack: Stack, team_project: Path) -> None:
    """`digitflow ui` with the server in MLFLOW_TRACKING_URI starts nothing: it prints the server's addresses
    of the view the pipeline saved there, and the table. A READ-only user (bob) cannot save a sweep's view:
    one warning, and addresses that filter and sort by themselves."""
    env = stack.client_env(BOB)
    shown = run(team_project, "digitflow", "ui", "--no-browser", **env)
    base = f"{stack.config.mlflow_url}/#/experiments/"
    assert f"?workflowType=machine_learning&viewStateShareKey={COMPARISON.id}" in shown.stdout
    assert base in shown.stdout
    assert "serving" not in shown.stdout + shown.stderr  # nothing was started
    for model in run_ids(team_project):
        assert re.search(rf"^{model}-digits-\S+\s+{model}\s+digits\s+0\.\d{{4}}", shown.stdout, re.MULTILINE)
    refused = run(team_project, "digitflow", "ui", "--no-browser", "--study", "nobody", **env)
    assert "could not save the view" in refused.stderr
    assert "searchFilter=tags.%60digitflow.sweep.study%60+%3D+%27nobody%27" in refused.stdout
    assert "no runs match" in refused.stdout


def test_stack_restarts_with_its_data_and_stops_with_no_process_left(stack: Stack, team_project: Path) -> None:
    """The README's `status`, `down` and `up` commands, as written."""
    pids = stack.pids()
    assert len(pids) == 2
    status = stack.readme("digitflow stack status")
    assert f"mlflow     running (pid {read_pid(stack.state / 'mlflow.pid')})" in status
    assert stack.config.mlflow_url in status
    assert f"seaweedfs  running (pid {read_pid(stack.state / 'seaweedfs.pid')})" in status
    assert "stopped: mlflow, seaweedfs" in stack.readme("digitflow stack down")
    assert not [pid for pid in pids if group_members(pid)], "a service or one of its workers is still running"
    assert all(port_is_free(port) for port in stack.config.ports.values())
    status = stack.readme("digitflow stack status")
    assert "mlflow     stopped" in status
    assert "seaweedfs  stopped" in status

    stack.readme("digitflow stack up")
    client = stack.client(stack.alice)
    for run_id in run_ids(team_project).values():
        assert client.get_run(run_id).data.metrics["test_accuracy"] > 0.9, "runs survive a restart"
    assert client.list_artifacts(run_ids(team_project)["torch"]), "artifacts survive a restart"

    pids = stack.pids()
    stack.readme("digitflow stack down")
    assert not [pid for pid in pids if group_members(pid)]

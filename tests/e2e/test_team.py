"""The team stack end to end, on real services bound to 127.0.0.1: Debian's PostgreSQL, SeaweedFS (S3)
and an MLflow server with basic auth, started and stopped by ``digitflow stack``; one stack for the module.

The digits pipeline logs to the server; a READ-only user is refused (403) and a wrong password gets the
project's message; DVC pushes to the S3 remote and a fresh clone pulls and reproduces nothing; the stack
keeps its data across a restart and stops with no process left. And the chain of trust
(docs/threat_model.md): each S3 key reaches its own bucket only, and CI's none for writing; an account
registers and promotes only with --promote; no secret shows in `ps`; a model planted in the DVC remote or
through the MLflow server is refused before it runs; a reused PID is left alone.
Skipped, with the reason, outside CI where PostgreSQL or the team extra is missing; in CI they must run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from digitflow.core import names, paths
from digitflow.core.processes import group_members
from digitflow.team.config import (
    ARTIFACTS_BUCKET,
    CONFIG_NAME,
    DVC_BUCKET,
    StackConfig,
    load_config,
    port_is_free,
    user_files,
)
from digitflow.team.supervisor import read_pid
from digitflow.tracking.links import COMPARISON
from digitflow.tracking.model_files import BRANCH_TAG, DIGEST_TAG
from tests.conftest import PROJECT_ROOT, git, run
from tests.support import project as testing
from tests.support.planted import planted_pickle
from tests.support.ps_watch import command_lines_seen, leaked
from tests.support.readme import readme_command

pytestmark = [pytest.mark.team, pytest.mark.e2e]

BOB = ("bob", "bob-chose-this-one")  # READ only, the docs' second user, with a password of their own
SERVICES = ("mlflow", "seaweedfs")
USERS = ("alice", "bob", "release", "ci-pr")  # the four `add-user` commands of docs/team.md


def missing_requirements() -> list[str]:
    """What the stack needs beyond the team extra (which the `team` marker checks: tests/support/extras.py)."""
    return [] if shutil.which("pg_lsclusters") else ["PostgreSQL (sudo apt-get install -y postgresql)"]


@dataclass
class Stack:
    state: Path
    name: str
    config: StackConfig
    seen: set[str] = field(default_factory=set)  # every command line while the stack and its users were set up

    def account(self, username: str) -> tuple[str, str]:
        """An account's name and password, from the file `add-user` wrote for the admin to hand over."""
        env_file, _aws = user_files(self.state, username)
        exports = dict(
            word.removeprefix("export ").split("=", 1) for word in shlex.split(env_file.read_text()) if "=" in word
        )
        return exports["MLFLOW_TRACKING_USERNAME"], exports["MLFLOW_TRACKING_PASSWORD"]

    @property
    def alice(self) -> tuple[str, str]:  # EDIT on the experiment; the password `add-user` generated
        return self.account("alice")

    @property
    def admin(self) -> tuple[str, str]:
        return self.config.admin_username, self.config.admin_password

    def secrets(self) -> list[str]:
        """Every secret of the stack and its accounts: none may ever be on a command line."""
        config = load_config(self.state)
        keys = [key["secret_key"] for key in config.dvc_keys.values()]
        passwords = [self.account(user)[1] for user in USERS]
        return [config.pg_password, config.s3_secret_key, config.admin_password, config.flask_secret, *keys, *passwords]

    def s3(self, access_key: str, secret_key: str) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.config.s3_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
        )

    def dvc_s3(self, username: str) -> Any:
        key = load_config(self.state).dvc_keys[username]
        return self.s3(key["access_key"], key["secret_key"])

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


def add_user_command(user: str) -> str:
    """The start of docs/team.md's `add-user` command for ``user`` (bob's password comes on standard input)."""
    return "printf" if user == "bob" else f"digitflow stack add-user {user} "


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The README's `up` and `add-user` commands as written, with the state folder and the name in the
    environment: its own role and databases, beside any developer's stack. Every process's command line is
    sampled meanwhile (what `ps` shows every user)."""
    missing = missing_requirements()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the team tests; missing: {', '.join(missing)}")
        pytest.skip(f"the team stack needs: {', '.join(missing)}")
    state = tmp_path_factory.mktemp("stack")
    stack = Stack(state, f"dftest_{secrets.token_hex(3)}", StackConfig())
    try:
        with command_lines_seen() as seen:
            shown = stack.readme("digitflow stack up")
            stack.config = load_config(state)
            added = {user: stack.readme(add_user_command(user), BOB_PASSWORD=BOB[1]) for user in USERS}
        stack.seen = seen
        assert f"MLflow     {stack.config.mlflow_url}" in shown
        assert f"(databases {stack.name}_mlflow, {stack.name}_auth)" in shown
        assert stack.config.admin_password not in shown, "up says where the password is, not what"
        assert "user 'alice': EDIT on experiment 'digitflow'" in added["alice"]
        assert "READ on the registered models, DVC remote: write" in added["alice"]
        assert "user 'bob': READ on experiment 'digitflow'" in added["bob"]
        assert "EDIT on the registered models" in added["release"]
        assert "DVC remote: read" in added["ci-pr"]
        assert readme_command(add_user_command("bob")).endswith("add-user bob --password-stdin")
        assert stack.account("bob") == BOB
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
    """A project copy whose pipeline ran and pushed by the README's commands, logging to the server (its
    command lines sampled too: training runs, the watchdog, DVC's push)."""
    # 10 epochs instead of 50: the same logging, a fifth of the training time.
    destination = tmp_path_factory.mktemp("team") / "project"
    project = testing.make_project_copy(PROJECT_ROOT, destination, train_torch={"digits": {"epochs": 10}})
    script = "\n".join(["set -e", *(readme_command(command) for command in README_TEAM_RUN)])
    with command_lines_seen() as seen:
        result = run(project, "bash", "-c", script, **stack.env)
    stack.seen |= seen
    assert "DVC remote 'team' (s3://digitflow-dvc) is this clone's default, at the stack" in result.stdout
    local_config = (project / ".dvc/config.local").read_text()
    assert "credentialpath" in local_config
    assert load_config(stack.state).dvc_keys["admin"]["secret_key"] not in local_config
    assert "Running stage 'train_torch'" in result.stdout
    return project


def run_ids(project: Path) -> dict[str, str]:
    """Each model's MLflow run, as the training stages recorded it for DVC."""
    files = {model: project / paths.training_record_file(model) for model in names.MODEL_NAMES}
    return {model: json.loads(path.read_text())[model]["mlflow_run_id"] for model, path in files.items()}


def test_pipeline_logs_both_runs_to_the_server(stack: Stack, team_project: Path, tmp_path: Path) -> None:
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
        # The registry works on the server as on the embedded store: a version per run, test metrics on it,
        # with its files' digest and its branch (the admin may register).
        (version,) = client.search_model_versions(f"name = 'digitflow-{model}' and run_id = '{run_id}'")
        assert float(version.tags["test_accuracy"]) == pytest.approx(evaluated[model]["test_accuracy"])
        assert (version.tags[BRANCH_TAG], len(version.tags[DIGEST_TAG])) == ("main", 64)
    model = mlflow.pyfunc.load_model(f"runs:/{run_ids(team_project)['sklearn']}/model")
    assert model.loader_module == "digitflow.models.sklearn_pyfunc"
    s3 = stack.s3(stack.config.s3_access_key, stack.config.s3_secret_key)  # the MLflow server's own key
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, MaxKeys=1000).get("Contents", [])]
    assert any(key.endswith("val_confusion_matrix.png") for key in keys), "artifacts are stored in S3"


def test_no_secret_is_ever_on_a_command_line(stack: Stack, team_project: Path) -> None:
    """`ps` shows every user each process's command line: sampled all through `stack up`, the four
    `add-user`s (one password on standard input), `dvc repro` of both training runs with their watchdogs
    and `dvc push`, none of the stack's secrets or passwords was ever one."""
    assert any("stack up" in line for line in stack.seen)
    assert any("add-user" in line for line in stack.seen)
    assert any("digitflow.tracking.watchdog" in line for line in stack.seen), "the sampling saw the training"
    assert leaked(stack.seen, stack.secrets()) == []


def test_each_s3_key_reaches_its_own_bucket_only(stack: Stack, team_project: Path) -> None:
    """The MLflow server's key alone writes the artifacts bucket; a DVC user's key writes the DVC bucket
    only; a read-only key (CI's) writes nothing."""
    from botocore.exceptions import ClientError

    def writes(client: Any, bucket: str) -> bool | str:
        try:
            client.put_object(Bucket=bucket, Key="probe/written-by-a-test", Body=b"x")
        except ClientError as exc:
            return exc.response["Error"]["Code"] != "AccessDenied" and exc.response["Error"]["Code"]
        client.delete_object(Bucket=bucket, Key="probe/written-by-a-test")
        return True

    server = stack.s3(stack.config.s3_access_key, stack.config.s3_secret_key)
    expected = {
        "mlflow server": (server, {ARTIFACTS_BUCKET: True, DVC_BUCKET: False}),
        "alice (--dvc write)": (stack.dvc_s3("alice"), {ARTIFACTS_BUCKET: False, DVC_BUCKET: True}),
        "the admin's DVC key": (stack.dvc_s3("admin"), {ARTIFACTS_BUCKET: False, DVC_BUCKET: True}),
        "ci-pr (--dvc read)": (stack.dvc_s3("ci-pr"), {ARTIFACTS_BUCKET: False, DVC_BUCKET: False}),
    }
    found = {who: {bucket: writes(client, bucket) for bucket in buckets} for who, (client, buckets) in expected.items()}
    assert found == {who: buckets for who, (_client, buckets) in expected.items()}
    ci = stack.dvc_s3("ci-pr")
    assert ci.list_objects_v2(Bucket=DVC_BUCKET, MaxKeys=5)["KeyCount"] > 0, "CI reads the DVC remote"


def test_only_an_account_with_promote_registers_or_moves_the_champion(stack: Stack, team_project: Path) -> None:
    """bob (READ) cannot log, register or move @champion; alice (EDIT) logs but cannot register or move
    it; release (--promote) moves it, with `digitflow promote` as a user runs it."""
    from mlflow.exceptions import MlflowException

    run_id = run_ids(team_project)["torch"]
    name = "digitflow-torch"

    def refused(user: tuple[str, str], action: str) -> int:
        client = stack.client(user)
        experiment_id = client.get_experiment_by_name("digitflow").experiment_id
        calls = {
            "log": lambda: client.create_run(experiment_id),
            "register": lambda: client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id),
            "promote": lambda: client.set_registered_model_alias(name, "champion", "1"),
            "tag": lambda: client.set_model_version_tag(name, "1", "test_accuracy", "1.0"),
        }
        with pytest.raises(MlflowException) as caught:
            calls[action]()
        return caught.value.get_http_status_code()

    assert [refused(BOB, action) for action in ("log", "register", "promote", "tag")] == [403] * 4
    assert [refused(stack.alice, action) for action in ("register", "promote", "tag")] == [403] * 3
    env = stack.client_env(stack.account("release"))
    promoted = run(team_project, "digitflow", "promote", "torch", **env)
    assert "digitflow-torch version 1" in promoted.stdout
    assert "@champion" in promoted.stdout


def test_a_short_password_is_refused(stack: Stack, tmp_path: Path) -> None:
    command = "printf '%s\\n' eleven-char | digitflow stack add-user carol --password-stdin"
    short = run(PROJECT_ROOT, "bash", "-c", command, check=False, **stack.env)
    assert short.returncode == 1
    assert "the password has 11 characters; a password needs at least 12" in short.stderr
    assert not user_files(stack.state, "carol")[0].exists()
    admin = run(PROJECT_ROOT, "digitflow", "stack", "--state-dir", str(tmp_path / "other"), "up", check=False,
                MLFLOW_AUTH_ADMIN_PASSWORD="admin123")  # fmt: skip
    assert admin.returncode == 1
    assert "MLFLOW_AUTH_ADMIN_PASSWORD has 8 characters; a password needs at least 12" in admin.stderr


def test_user_without_permission_is_refused_and_nothing_is_logged(stack: Stack, team_project: Path) -> None:
    from mlflow.exceptions import MlflowException

    admin = stack.client((stack.config.admin_username, stack.config.admin_password))
    experiment = admin.get_experiment_by_name("digitflow")
    # alice, added by the docs' `add-user alice --permission EDIT` with its generated password, may log.
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


def model_file_key(project: Path, model_file: str = "model.npz") -> str:
    """Where the DVC remote keeps the scikit-learn model file of ``project``'s last run: its MD5, from the
    folder's listing (a `.dir` object in DVC's cache) whose MD5 dvc.lock records."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (out,) = [o for o in lock["stages"]["train_sklearn"]["outs"] if o["path"] == "models/sklearn"]
    listing = project / ".dvc/cache/files/md5" / out["md5"][:2] / out["md5"][2:]
    (md5,) = [entry["md5"] for entry in json.loads(listing.read_text()) if entry["relpath"] == model_file]
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def a_picture(folder: Path) -> Path:
    from PIL import Image, ImageDraw

    picture = Image.new("L", (64, 64), 240)
    ImageDraw.Draw(picture).line([(16, 12), (48, 12), (28, 54)], fill=20, width=7)
    picture.save(folder / "seven.png")
    return folder / "seven.png"


def test_a_model_planted_in_the_dvc_remote_is_refused_before_it_runs(
    stack: Stack, team_project: Path, tmp_path: Path
) -> None:
    """alice (--dvc write) replaces the scikit-learn model in the DVC remote with a pickle that would create a
    file when loaded. A fresh clone with CI's read-only key: `dvc pull` refuses it (`verify`: its hash is not
    the one dvc.lock records) and checks nothing of it out. Put in place by hand anyway, `predict` and the
    `evaluate` stage refuse it as damaged: the model file is numbers only, read without unpickling."""
    witness = tmp_path / "PLANTED_CODE_RAN"
    planted, _ = planted_pickle(tmp_path / "planted" / "model.npz", witness)
    stack.dvc_s3("alice").put_object(Bucket=DVC_BUCKET, Key=model_file_key(team_project), Body=planted.read_bytes())

    stack.readme("git clone", cwd=tmp_path, DIGITFLOW_REPO=str(team_project))
    clone = tmp_path / "digitflow"
    run(clone, "digitflow", "stack", "dvc-remote", "--user", "ci-pr", **stack.env)
    pulled = run(clone, "dvc", "pull", check=False)
    assert pulled.returncode != 0
    assert "models/sklearn" in pulled.stderr
    assert not (clone / paths.SKLEARN_MODEL_FILE).exists()

    model_file = team_project / paths.SKLEARN_MODEL_FILE
    saved = model_file.read_bytes()
    try:
        model_file.write_bytes(planted.read_bytes())
        env = stack.client_env(stack.alice)
        predicted = run(
            team_project, "digitflow", "predict", str(a_picture(tmp_path)), "--model", "sklearn", check=False
        )
        evaluated = run(team_project, sys.executable, "-m", "stages.evaluate", check=False, **env)
    finally:
        model_file.write_bytes(saved)
    for result in (predicted, evaluated):
        assert result.returncode == 1, result.stderr
        assert f"{paths.SKLEARN_MODEL_FILE} is damaged" in result.stderr
        assert "Traceback" not in result.stderr
    assert not witness.exists(), "the planted pickle ran"


def test_a_champion_changed_through_the_server_is_refused_before_it_runs(
    stack: Stack, team_project: Path, tmp_path: Path
) -> None:
    """MLflow lets an account with EDIT on an experiment write any of its artifacts through the server, the
    champion's model files included: alice replaces the scikit-learn champion's model file with a pickle that
    would create a file when loaded. `predict --source champion` and `serve` check the files against the
    digest recorded at registration and refuse them before anything is read; the PyTorch champion, untouched,
    still predicts (its pt2 archive read with pickle refused)."""
    release = stack.client_env(stack.account("release"))
    run(team_project, "digitflow", "promote", "sklearn", **release)
    champion = stack.client(stack.admin).get_model_version_by_alias("digitflow-sklearn", "champion")
    witness = tmp_path / "PLANTED_CODE_RAN"
    planted, _ = planted_pickle(tmp_path / "planted" / "model.npz", witness)
    model_id = champion.model_id or champion.source.removeprefix("models:/")  # the logged model it was made from
    stack.client(stack.alice).log_model_artifact(model_id, str(planted), artifact_path="data")

    env = stack.client_env(stack.alice)
    picture = str(a_picture(tmp_path))
    predicted = run(team_project, "digitflow", "predict", picture, "--source", "champion", "--model", "sklearn",
                    check=False, **env)  # fmt: skip
    served = run(team_project, "digitflow", "serve", "sklearn", "--port", "9", check=False, **env)
    for result in (predicted, served):
        assert result.returncode == 1, result.stderr
        assert f"the files of digitflow-sklearn version {champion.version} changed since it was registered" in (
            result.stderr
        )
    assert not witness.exists(), "the planted pickle ran"
    torch_champion = run(team_project, "digitflow", "predict", picture, "--source", "champion", **env)
    assert re.fullmatch(rf"{re.escape(picture)}: \d \(probability 0\.\d{{3}}\)\n", torch_champion.stdout)


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


def test_the_pull_requests_account_logs_its_run_without_registering(stack: Stack, team_project: Path) -> None:
    """The CI account of pull requests (EDIT on the experiment, READ on the registry) trains: its run and model
    are logged, registering is refused by the server and is a warning, not a failed stage."""
    admin = stack.client(stack.admin)
    before = len(admin.search_model_versions("name = 'digitflow-sklearn'"))
    record_file = team_project / paths.training_record_file("sklearn")
    saved = record_file.read_bytes()
    try:
        result = run(
            team_project, sys.executable, "-m", "stages.train_sklearn", **stack.client_env(stack.account("ci-pr"))
        )
        record = json.loads(record_file.read_text())["sklearn"]
    finally:
        record_file.write_bytes(saved)
    assert "the model is logged but not registered: ci-pr may not register versions of digitflow-sklearn" in (
        result.stderr
    )
    assert (record["registered_model"], record["model_version"]) == (None, None)
    assert admin.get_run(record["mlflow_run_id"]).info.status == "FINISHED"
    assert len(admin.search_model_versions("name = 'digitflow-sklearn'")) == before


def test_stack_restarts_with_its_data_and_stops_with_no_process_left(stack: Stack, team_project: Path) -> None:
    """The README's `status`, `down` and `up` commands, as written; and, while the stack is down, its MLflow
    PID file names another process (a reboot reused the number): `up` starts MLflow all the same and `down`
    leaves that process alone."""
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

    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        record = json.loads((stack.state / "mlflow.pid").read_text()) if (stack.state / "mlflow.pid").exists() else {}
        stale = {"pid": bystander.pid, "start_time": 1, "cmdline": record.get("cmdline", ["mlflow", "server"])}
        (stack.state / "mlflow.pid").write_text(json.dumps(stale))
        stack.readme("digitflow stack up")
        assert read_pid(stack.state / "mlflow.pid") not in (None, bystander.pid), "up started MLflow"
        assert bystander.poll() is None
        client = stack.client(stack.alice)
        for run_id in run_ids(team_project).values():
            assert client.get_run(run_id).data.metrics["test_accuracy"] > 0.9, "runs survive a restart"
        assert client.list_artifacts(run_ids(team_project)["torch"]), "artifacts survive a restart"

        pids = stack.pids()
        stack.readme("digitflow stack down")
        assert not [pid for pid in pids if group_members(pid)]
        assert bystander.poll() is None, "down left the other process alone"
    finally:
        bystander.kill()
        bystander.wait()

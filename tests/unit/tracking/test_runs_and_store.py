"""digitflow.tracking.runs, the pure parts: where the store is, dvc.lock input hashes, tags, RunInfo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from digitflow.core.errors import InputError
from digitflow.tracking.runs import RunInfo, git_commit, input_hashes, run_tags
from digitflow.tracking.store import STORE_FILE, TAG_PREFIX, repository_root, tracking_uri


def test_repository_root_is_dvc_root_when_set(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    assert repository_root({"DVC_ROOT": str(repo / "sub" / "..")}) == repo.resolve()


@pytest.mark.parametrize("environ", [{}, {"DVC_ROOT": ""}])
def test_repository_root_defaults_to_working_directory(tmp_path: Path, monkeypatch, environ):
    monkeypatch.chdir(tmp_path)
    assert repository_root(environ) == tmp_path.resolve()


def test_repository_root_reads_process_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert repository_root() == tmp_path.resolve()


def test_tracking_uri_is_sqlite_in_the_repository(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_uri({}) == f"sqlite:///{tmp_path.resolve() / STORE_FILE}"
    elsewhere = tmp_path / "original"
    elsewhere.mkdir()
    # Under DVC (even in a temporary experiment copy) the store is the original repository's.
    assert tracking_uri({"DVC_ROOT": str(elsewhere)}) == f"sqlite:///{elsewhere.resolve() / STORE_FILE}"


def test_tracking_uri_env_override(tmp_path: Path):
    environ = {"MLFLOW_TRACKING_URI": "http://mlflow.example:5000", "DVC_ROOT": str(tmp_path)}
    assert tracking_uri(environ) == "http://mlflow.example:5000"
    assert tracking_uri({"MLFLOW_TRACKING_URI": "", "DVC_ROOT": str(tmp_path)}).startswith("sqlite:///")


def test_tracking_uri_reads_process_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert tracking_uri() == "sqlite:////tmp/elsewhere.db"


DVC_YAML = {
    "stages": {
        "prepare": {"cmd": "python -m stages.prepare", "deps": ["stages/prepare.py"], "outs": ["data/processed"]},
        "split": {"cmd": "python -m stages.split", "deps": ["data/processed"], "outs": ["data/split"]},
        "train": {
            "cmd": "python -m stages.train",
            "deps": ["data/processed", "data/split", "stages/train.py", "data/not-yet-run"],
            "outs": ["models/m"],
        },
    }
}
DVC_LOCK = {
    "schema": "2.0",
    "stages": {
        "prepare": {
            "cmd": "python -m stages.prepare",
            "deps": [{"path": "stages/prepare.py", "hash": "md5", "md5": "d" * 32, "size": 10}],
            "outs": [{"path": "data/processed", "hash": "md5", "md5": "a" * 32 + ".dir", "size": 1, "nfiles": 3}],
        },
        "split": {
            "cmd": "python -m stages.split",
            "outs": [{"path": "data/split", "hash": "md5", "md5": "b" * 32 + ".dir", "size": 1, "nfiles": 1}],
        },
    },
}


@pytest.fixture
def pipeline_files(tmp_path: Path) -> tuple[Path, Path]:
    dvc_yaml, lock = tmp_path / "dvc.yaml", tmp_path / "dvc.lock"
    dvc_yaml.write_text(yaml.safe_dump(DVC_YAML))
    lock.write_text(yaml.safe_dump(DVC_LOCK))
    return dvc_yaml, lock


def test_input_hashes_are_the_recorded_outputs_a_stage_reads(pipeline_files):
    dvc_yaml, lock = pipeline_files
    # Code deps are not outputs of any stage and a stage that never ran has no hash: both left out.
    assert input_hashes("train", dvc_yaml, lock) == {
        "data/processed": "a" * 32 + ".dir",
        "data/split": "b" * 32 + ".dir",
    }
    assert input_hashes("split", dvc_yaml, lock) == {"data/processed": "a" * 32 + ".dir"}
    assert input_hashes("prepare", dvc_yaml, lock) == {}


def test_input_hashes_unknown_stage(pipeline_files):
    assert input_hashes("no_such_stage", *pipeline_files) == {}


def test_input_hashes_without_lock_or_dvc_yaml(tmp_path: Path, pipeline_files):
    dvc_yaml, lock = pipeline_files
    assert input_hashes("train", dvc_yaml, tmp_path / "missing.lock") == {}
    assert input_hashes("train", tmp_path / "missing.yaml", lock) == {}


def test_input_hashes_with_empty_lock(pipeline_files):
    dvc_yaml, lock = pipeline_files
    lock.write_text("")
    assert input_hashes("train", dvc_yaml, lock) == {}


def test_input_hashes_default_paths_are_relative_to_working_directory(tmp_path, pipeline_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert input_hashes("split") == {"data/processed": "a" * 32 + ".dir"}


def test_run_info_round_trip():
    info = RunInfo("0123abcd", "7", "sqlite:////repo/mlflow.db", "digitflow-torch", "2")
    assert RunInfo.from_record(info.to_record()) == info
    assert info.to_record()["mlflow_run_id"] == "0123abcd"  # the name `dvc exp show` lists


def test_an_incomplete_run_record_names_the_file(tmp_path: Path, monkeypatch):
    from digitflow.core import paths
    from digitflow.tracking.records import read_run_info

    monkeypatch.chdir(tmp_path)
    paths.training_record_file("torch").parent.mkdir(parents=True)
    paths.training_record_file("torch").write_text(json.dumps({"torch": {"mlflow_run_id": "1"}}))
    with pytest.raises(InputError, match=r"metrics/runs/torch\.json is damaged .*KeyError"):
        read_run_info("torch")


def test_git_commit(tmp_path: Path):
    assert git_commit(tmp_path) == "unknown"  # not a repository
    for args in (
        ["init", "-q"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x"],
    ):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    assert len(head) == 40


def test_run_tags(tmp_path: Path, pipeline_files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ = {"DVC_EXP_NAME": "wise-owl", "DVC_EXP_BASELINE_REV": "c" * 40}
    tags = run_tags("train", "digits", environ)
    assert tags[TAG_PREFIX + "stage"] == "train"
    assert tags[TAG_PREFIX + "dataset"] == "digits"
    assert tags["dvc.exp_name"] == "wise-owl"
    assert tags["dvc.exp_baseline_rev"] == "c" * 40
    assert tags["dvc.input.data/processed"] == "a" * 32 + ".dir"
    assert tags["dvc.input.data/split"] == "b" * 32 + ".dir"
    assert tags[TAG_PREFIX + "git_commit"] == tags["mlflow.source.git.commit"] == "unknown"
    assert tags[TAG_PREFIX + "pid"] == str(os.getpid())  # what tells a dead stage from a live one
    assert all(isinstance(value, str) for value in tags.values())
    outside_dvc = run_tags("train", "digits", {})
    assert "dvc.exp_name" not in outside_dvc
    assert "dvc.exp_baseline_rev" not in outside_dvc


def test_trial_runs_are_tagged_with_the_study_and_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    tags = run_tags("train_torch", "digits", {"DIGITFLOW_SWEEP_STUDY": "tune", "DIGITFLOW_SWEEP_TRIAL": "3"})
    assert tags["digitflow.sweep.study"] == "tune"
    assert tags["digitflow.sweep.trial"] == "3"
    assert "digitflow.sweep.study" not in run_tags("train_torch", "digits", {})


def test_a_new_store_is_a_copy_of_the_cached_empty_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two new stores: both from the template (made once per MLflow version, in the user's cache), each
    with its own Default experiment, the pipeline's experiment as id 1, and MLflow's current schema."""
    import sqlite3

    import mlflow

    from digitflow.tracking.store import prepare_experiment, store_template

    template = store_template()
    assert template is not None
    assert template.is_file()
    assert mlflow.__version__ in template.name
    for name in ("one", "two"):
        repository = tmp_path / name
        repository.mkdir()
        monkeypatch.chdir(repository)
        assert prepare_experiment("digitflow") == "1"
        with sqlite3.connect(repository / "mlflow.db") as db:
            experiments = db.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()
            version = db.execute("SELECT version_num FROM alembic_version").fetchall()
        assert experiments == [
            (0, "Default", str(repository / "mlruns" / "0")),
            (1, "digitflow", (repository / "mlartifacts").as_uri()),
        ]
        with sqlite3.connect(template) as db:
            assert version == db.execute("SELECT version_num FROM alembic_version").fetchall()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'one' / 'mlflow.db'}")
    assert client.get_experiment_by_name("digitflow").tags["mlflow.experimentKind"] == "custom_model_development"

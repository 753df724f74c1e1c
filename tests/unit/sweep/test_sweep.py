"""The sweep's checks before any work, and the clean-up of a killed trial's temporary copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digitflow.sweep.experiments import clear_abandoned
from digitflow.sweep.space import SweepConfigError, load_config, parse_metric, validate
from tests.conftest import PROJECT_ROOT
from tests.support.sweeps import SPACE


def test_space_values_are_checked_against_params_yaml(tmp_path: Path) -> None:
    space = {
        **SPACE,
        "space": {"train_torch.lr": {"low": 0, "high": 1}, "train_torch.optimizer": {"choices": ["adam", "rmsprop"]}},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    config = load_config(tmp_path / "space.yaml")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    with pytest.raises(SweepConfigError) as error:
        validate(config, params)
    message = str(error.value)
    assert "train_torch.lr: 0 is not accepted" in message
    assert "train_torch.optimizer: 'rmsprop' is not accepted" in message
    assert parse_metric("sklearn.val_accuracy").direction == "maximize"
    assert parse_metric("torch.val_log_loss").direction == "minimize"


def abandoned_copy(root: Path, name: str, pid: int) -> Path:
    """What a `dvc exp run --temp` killed mid-run leaves: its info file and its temporary copy."""
    temp = root / ".dvc/tmp/exps/standalone" / f"tmp-{name}"
    (temp / ".dvc/tmp").mkdir(parents=True)
    (temp / ".dvc/tmp/lock").write_text(f" {pid}\n")
    info = {"location": "tempdir", "root_dir": str(temp), "name": name, "status": 1}
    for folder in (root / ".dvc/tmp/exps/run" / name, root / ".dvc/tmp/exps/standalone/run" / name):
        folder.mkdir(parents=True)
        (folder / f"{name}.run").write_text(json.dumps(info))
    return temp


def test_only_dead_copies_of_failed_trials_are_cleared(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = abandoned_copy(tmp_path, "s-1", dead.pid)
    alive = abandoned_copy(tmp_path, "s-2", os.getpid())  # failed in the study, but its dvc still runs
    other = abandoned_copy(tmp_path, "s-3", dead.pid)  # not a failed trial
    assert clear_abandoned(tmp_path, {"s-1", "s-2"}) == ["s-1"]
    assert not killed.exists()
    assert not (tmp_path / ".dvc/tmp/exps/run/s-1").exists()
    assert not (tmp_path / ".dvc/tmp/exps/standalone/run/s-1").exists()
    assert alive.exists()
    assert other.exists()


def store_with_trial_run(root: Path, experiment: str, model: str) -> str:
    """A real embedded store holding the MLflow run a trial's training stage logged."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment_id = client.create_experiment("digitflow")
    run = client.create_run(experiment_id, tags={"dvc.exp_name": experiment, "digitflow.model": model})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_a_trial_finds_its_run_and_a_failing_store_costs_only_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The store is shared with every worker's stages (an SQLite store locked by one of them, a server
    that went down): the lookup, made after the trial's metric is read, must not end the worker."""
    from digitflow.sweep.worker import training_run_id

    run_id = store_with_trial_run(tmp_path, "s-3", "torch")
    monkeypatch.chdir(PROJECT_ROOT)  # params.yaml names the experiment
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert training_run_id("s-3", "torch") == run_id
    assert training_run_id("s-3", "sklearn") is None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert training_run_id("s-3", "torch", attempts=2, wait_s=0) is None
    assert "experiment s-3 keeps its result, but its MLflow run could not be looked up" in caplog.text
    assert "Connection refused" in caplog.text or "ConnectionRefusedError" in caplog.text

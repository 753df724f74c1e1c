"""The sweep's checks before any work, and the clean-up of a killed trial's temporary copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digitflow.sweep.experiments import clear_abandoned, experiment_ref
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


def dvc_repo_with_experiment(root: Path, name: str, record: dict) -> str:
    """A real git and DVC repository holding experiment ``name`` (a ref under refs/exps, as `dvc exp run`
    makes) whose training record is DVC-cached, not in git; the baseline commit is returned."""

    def run(*command: str) -> str:
        return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout

    run("git", "init", "-q")
    run("git", "config", "user.email", "t@example.com")
    run("git", "config", "user.name", "t")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run("git", "commit", "-qm", "baseline")
    baseline = run("git", "rev-parse", "HEAD").strip()
    (root / "metrics/runs").mkdir(parents=True)
    (root / "metrics/runs/torch.json").write_text(json.dumps(record))
    run(sys.executable, "-m", "dvc", "add", "-q", "metrics/runs/torch.json")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "experiment")
    run("git", "update-ref", experiment_ref(baseline, name), "HEAD")
    run("git", "reset", "-q", "--hard", baseline)  # the workspace is back at the baseline, as after a trial
    (root / "metrics/runs/torch.json").unlink()  # ignored by git, so reset keeps it
    return baseline


def test_a_trial_reads_its_mlflow_run_from_the_experiment_and_a_missing_record_costs_only_the_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker links each trial to its MLflow run without opening the store (which the other workers'
    stages write to all the time); a record it cannot read must not end the worker."""
    from digitflow.sweep.worker import training_run_id

    record = {"torch": {"mlflow_run_id": "0123abcd", "mlflow_experiment_id": "1", "tracking_uri": "sqlite:///x"}}
    baseline = dvc_repo_with_experiment(tmp_path, "s-3", record)
    assert not (tmp_path / "metrics/runs/torch.json").exists()
    assert training_run_id(tmp_path, baseline, "s-3", "torch") == "0123abcd"

    assert training_run_id(tmp_path, baseline, "s-3", "sklearn") is None  # no record of that model
    assert "experiment s-3 keeps its result, but its MLflow run could not be read from metrics/runs/sklearn.json" in (
        caplog.text
    )
    caplog.clear()
    shutil.rmtree(tmp_path / ".dvc/cache")  # a cache cleared by `dvc gc` or by hand
    assert training_run_id(tmp_path, baseline, "s-3", "torch") is None
    assert "could not be read from metrics/runs/torch.json" in caplog.text

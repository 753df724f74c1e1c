"""Experiments at scale: queued DVC experiments, parallel writers and killed runs, on a real MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import pipeline_env, run

EXPERIMENT = "digitflow"


def client_for(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def runs_in(project: Path, experiment: str = EXPERIMENT) -> list:
    client = client_for(project)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def default_experiment_runs(project: Path) -> list:
    client = client_for(project)
    default = client.get_experiment_by_name("Default")
    return [] if default is None else client.search_runs([default.experiment_id])


PARALLEL_WRITER = textwrap.dedent(
    """
    import sys, time
    import mlflow
    from digitflow.tracking import training_run

    start_at = float(sys.argv[1])
    time.sleep(max(0.0, start_at - time.time()))
    with training_run("digitflow", "train_torch", "digits", f"writer-{sys.argv[2]}"):
        mlflow.log_metric("val_accuracy", 0.5)
    """
)


def test_parallel_writers_on_an_empty_store(tmp_path: Path) -> None:
    """Eight processes that create the store and experiment at the same instant all land, none misfiled."""
    start_at = time.time() + 8  # after every interpreter has imported mlflow
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", PARALLEL_WRITER, str(start_at), str(index)],
            cwd=tmp_path,
            env=pipeline_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(8)
    ]
    outcomes = [(w.wait(timeout=180), w.stderr.read()) for w in writers]
    assert [code for code, _ in outcomes] == [0] * 8, outcomes
    runs = runs_in(tmp_path)
    assert sorted(r.info.run_name for r in runs) == sorted(f"writer-{i}" for i in range(8))
    assert all(r.info.status == "FINISHED" for r in runs)
    assert default_experiment_runs(tmp_path) == []
    assert len(client_for(tmp_path).search_experiments()) == 2  # Default and digitflow, once each


def test_broken_store_is_reported_with_the_repair_step(project_copy: Path) -> None:
    run(project_copy, "dvc", "repro", "split")
    (project_copy / "mlflow.db").write_bytes(b"this is not an SQLite database, it was damaged" * 100)
    result = run(project_copy, "dvc", "repro", "train_sklearn", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MLflow store" in output
    assert "mlflow db upgrade" in output
    assert "Traceback" not in result.stderr
    assert not (project_copy / "models/sklearn").exists()


@pytest.mark.e2e
def test_killed_training_run_ends_failed_even_when_dvc_restores_the_stage(project_copy: Path) -> None:
    """SIGKILL a training stage, then a `dvc repro` that restores that stage from the run-cache (so no
    training code runs again): the killed run still ends FAILED."""
    params = project_copy / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 50", "epochs: 5"))
    run(project_copy, "dvc", "repro")  # fills the run-cache for epochs: 5
    params.write_text(params.read_text().replace("epochs: 5", "epochs: 100000"))
    repro = subprocess.Popen(
        ["dvc", "repro", "train_torch"],
        cwd=project_copy,
        env=pipeline_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    running: list = []
    while time.time() < deadline and not running:
        running = [r for r in runs_in(project_copy) if r.info.status == "RUNNING"]
        time.sleep(0.5)
    assert running, "the training stage never started its run"
    killed = running[0]
    time.sleep(1.0)
    os.kill(int(killed.data.tags["digitflow.pid"]), signal.SIGKILL)  # the stage's process, not DVC
    repro.wait(timeout=60)
    assert repro.returncode != 0

    params.write_text(params.read_text().replace("epochs: 100000", "epochs: 5"))
    result = run(project_copy, "dvc", "repro")
    assert "Stage 'train_torch' is cached - skipping run" in result.stdout
    deadline = time.time() + 60  # the watchdog needs a moment to import MLflow
    while time.time() < deadline and client_for(project_copy).get_run(killed.info.run_id).info.status == "RUNNING":
        time.sleep(0.5)
    statuses = {r.info.run_id: r.info.status for r in runs_in(project_copy)}
    assert statuses[killed.info.run_id] == "FAILED"
    assert "RUNNING" not in statuses.values()


def wait_for_queue(project: Path, timeout: float) -> str:
    deadline = time.time() + timeout
    status = ""
    while time.time() < deadline:
        status = run(project, "dvc", "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(3)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


@pytest.mark.e2e
def test_queued_experiments_land_in_the_repository_store(project_copy: Path) -> None:
    """Four queued experiments, two workers; the baseline's run-cache lets some experiments restore a
    training stage instead of running it. Each experiment still finds its own runs by name, with params
    and test metrics, and no experiment's results land in another's run."""
    run(project_copy, "dvc", "repro")  # the baseline: lr 0.003, C 1.0 in the run-cache
    grid = [("0.003", "0.5"), ("0.01", "1.0"), ("0.01", "0.5"), ("0.003", "2.0")]
    for lr, c in grid:
        run(project_copy, "dvc", "exp", "run", "--queue", "-S", f"train_torch.lr={lr}", "-S", f"train_sklearn.C={c}")
    run(project_copy, "dvc", "queue", "start", "-j", "2")
    status = wait_for_queue(project_copy, timeout=900)
    assert "Failed" not in status, status

    client = client_for(project_copy)
    runs = [r for r in runs_in(project_copy) if r.data.tags.get("dvc.exp_name")]
    exp_names = {tracked.data.tags["dvc.exp_name"] for tracked in runs}
    assert len(exp_names) == 4
    assert default_experiment_runs(project_copy) == []
    for name in exp_names:
        found = client.search_runs(
            [runs[0].info.experiment_id], filter_string=f"tags.`dvc.exp_name` = '{name}'", max_results=10
        )
        assert sorted(r.data.tags["digitflow.stage"] for r in found) == ["train_sklearn", "train_torch"], name
        for tracked in found:
            assert "test_accuracy" in tracked.data.metrics, name
            assert tracked.data.params["dataset"] == "digits"
            assert tracked.info.status == "FINISHED"
            assert tracked.data.tags.get("dvc.exp_baseline_rev")
    restored = [r for r in runs if "digitflow.restored_from" in r.data.tags]
    assert restored, "no stage came from the run-cache: the test lost its point"
    for tracked in runs_in(project_copy):
        for key in tracked.data.metrics:
            steps = [m.step for m in client.get_metric_history(tracked.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{tracked.info.run_name}: {key} logged twice at a step"
        if "test_accuracy" in tracked.data.metrics:  # one test set, one point: nobody else's results
            assert len(client.get_metric_history(tracked.info.run_id, "test_accuracy")) == 1
    by_stage = {stage: [r for r in runs if r.data.tags["digitflow.stage"] == stage] for stage in ("train_torch",)}
    assert sorted(float(t.data.params["lr"]) for t in by_stage["train_torch"]) == sorted(float(lr) for lr, _ in grid)

    shown = run(project_copy, "dvc", "exp", "show", "--json").stdout
    for tracked in runs:  # a stand-in run links to the training run whose id the experiment shows
        assert tracked.data.tags.get("digitflow.restored_from", tracked.info.run_id) in shown
    # Nothing was left in the temporary copies: the experiment copies are gone, the store is the repository's.
    assert not list((project_copy / ".dvc" / "tmp" / "exps").glob("**/mlflow.db"))
    assert json.loads(shown)

"""Experiments at scale: queued DVC experiments, parallel writers and killed runs, on a real MLflow store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import pipeline_env, run
from tests.support.experiments import client_for, default_experiment_runs, runs_in

PARALLEL_WRITER = textwrap.dedent(
    """
    import sys, time
    import mlflow
    from digitflow.tracking.runs import training_run

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

"""Experiments at scale: queued DVC experiments, parallel writers and killed runs, on a real MLflow store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import pipeline_env, run
from tests.support.readme import readme_command

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
    """The README's sweep, its commands exactly as written: a 2 x 2 grid, two workers, `dvc exp show`."""
    run(project_copy, "bash", "-c", readme_command("dvc exp run --queue"))
    run(project_copy, "bash", "-c", readme_command("dvc queue start"))
    status = wait_for_queue(project_copy, timeout=600)
    assert "Failed" not in status, run(project_copy, "dvc", "queue", "logs", "--help").stdout + status

    check_sweep(project_copy)


README_SWEEP_COLUMNS = [
    "Experiment",
    "sklearn.test_accuracy",
    "torch.test_accuracy",
    "sklearn.mlflow_run_id",
    "torch.mlflow_run_id",
    "train_sklearn.C",
    "train_torch.lr",
]


def check_sweep(project: Path) -> None:
    """What the README promises of its sweep once the queue is done, and what MLflow must show of it:
    every experiment finds its own runs by name, with params and test metrics, also when DVC restored a
    training stage from its run-cache, and no experiment's results land in another's run."""
    runs = runs_in(project)
    client = client_for(project)
    by_stage: dict[str, dict[str, object]] = {"train_sklearn": {}, "train_torch": {}}
    for tracked in runs:
        by_stage[tracked.data.tags["digitflow.stage"]][tracked.info.run_id] = tracked
    # The 2 x 2 grid repeats each C and each lr: DVC's run-cache restores a model that an earlier
    # experiment already trained with the same stage params, so a stage trains 2 to 4 times, depending
    # on which experiments the two workers run side by side; each restore gets a stand-in run.
    trained = {stage: [r for r in found.values() if "digitflow.restored_from" not in r.data.tags]  # type: ignore[attr-defined]
               for stage, found in by_stage.items()}  # fmt: skip
    assert all(2 <= len(found) <= 4 for found in trained.values()), {k: len(v) for k, v in trained.items()}
    assert any(len(found) < 4 for found in trained.values()), "no stage came from the run-cache"
    assert default_experiment_runs(project) == []
    assert all(tracked.data.tags.get("dvc.exp_name") for tracked in runs)
    assert all(tracked.data.tags.get("dvc.exp_baseline_rev") for tracked in runs)
    assert all(tracked.info.status == "FINISHED" for tracked in runs)
    exp_names = {tracked.data.tags["dvc.exp_name"] for tracked in runs}
    assert len(exp_names) == 4
    for name in exp_names:
        found = [r for r in runs if r.data.tags["dvc.exp_name"] == name]
        assert sorted(r.data.tags["digitflow.stage"] for r in found) == ["train_sklearn", "train_torch"], name
        for tracked in found:
            assert "test_accuracy" in tracked.data.metrics, name
            assert {"C", "lr"} & set(tracked.data.params), name
    for tracked in runs:
        for key in tracked.data.metrics:
            steps = [m.step for m in client.get_metric_history(tracked.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{tracked.info.run_name}: {key} logged twice at a step"
        # One test set, one point: no other experiment's results in this run.
        assert len(client.get_metric_history(tracked.info.run_id, "test_accuracy")) == 1, tracked.info.run_name
    # Nothing was left in the temporary copies: the experiment copies are gone, the store is the repository's.
    assert not list((project / ".dvc" / "tmp" / "exps").glob("**/mlflow.db"))

    # The README's `dvc exp show` (a wide terminal, as its table needs): the columns it promises, and
    # for each experiment of the grid the MLflow runs that trained (or first trained) its two models.
    table = run(project, "bash", "-c", readme_command("dvc exp show --sort-by"), COLUMNS="250").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert sorted(header) == sorted(README_SWEEP_COLUMNS), table
    rows = [line.split()[1:] for line in table.splitlines() if re.match(r"\s*[├└]── ", line)]
    experiments = [dict(zip(header[1:], row[2:], strict=True)) for row in rows]
    assert len(experiments) == 4, table
    assert {(e["train_sklearn.C"], e["train_torch.lr"]) for e in experiments} == {
        ("0.1", "0.001"),
        ("0.1", "0.01"),
        ("10", "0.001"),
        ("10", "0.01"),
    }, table
    for experiment in experiments:
        sklearn_run = by_stage["train_sklearn"][experiment["sklearn.mlflow_run_id"]]
        torch_run = by_stage["train_torch"][experiment["torch.mlflow_run_id"]]
        assert float(sklearn_run.data.params["C"]) == float(experiment["train_sklearn.C"])  # type: ignore[attr-defined]
        assert float(torch_run.data.params["lr"]) == float(experiment["train_torch.lr"])  # type: ignore[attr-defined]

"""The README's queued grid of DVC experiments: waiting for the queue, and what MLflow must show of it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import mlflow

from tests.conftest import run
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


def wait_for_queue(project: Path, timeout: float) -> str:
    deadline = time.time() + timeout
    status = ""
    while time.time() < deadline:
        status = run(project, "dvc", "queue", "status").stdout
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(3)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status}")


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
    runs = [tracked for tracked in runs_in(project) if "dvc.exp_name" in tracked.data.tags]  # not the baseline's
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

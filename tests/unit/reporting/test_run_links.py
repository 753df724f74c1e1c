"""The PR comment's links to each model's MLflow run: only for runs on a server, never a broken link."""

from __future__ import annotations

from pathlib import Path

from digitflow.core import names, paths
from digitflow.core.io import write_json
from digitflow.reporting.pr.run_links import mlflow_runs_section
from digitflow.tracking.records import training_record
from digitflow.tracking.runs import RunInfo

SERVER = "https://mlflow.example.org"


def record_runs(root: Path, tracking_uri: str) -> dict[str, str]:
    ids = {}
    for number, model in enumerate(names.MODEL_NAMES):
        run_id = f"{number}" * 32
        write_json(root / paths.train_metrics_file(model), {"test_accuracy": 0.9, "mlflow_run_id": run_id})
        (root / paths.model_dir(model)).mkdir(parents=True)
        record = root / paths.training_record_file(model)
        record.parent.mkdir(parents=True, exist_ok=True)
        write_json(record, training_record(model, RunInfo(run_id, "7", tracking_uri), 1.0))
        ids[model] = run_id
    return ids


def test_links_each_model_run_on_the_server(tmp_path: Path) -> None:
    ids = record_runs(tmp_path, SERVER)
    section = mlflow_runs_section({"MLFLOW_TRACKING_URI": SERVER + "/"}, tmp_path)
    assert section.startswith("### MLflow runs")
    for run_id in ids.values():
        # the run's page with the Model-training sidebar, whatever the visitor's browser chose before
        assert f"({SERVER}/#/experiments/7/runs/{run_id}?workflowType=machine_learning)" in section


def test_no_section_without_a_server(tmp_path: Path) -> None:
    record_runs(tmp_path, SERVER)
    assert mlflow_runs_section({}, tmp_path) == ""
    assert mlflow_runs_section({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, tmp_path) == ""


def test_runs_from_a_local_store_are_named_not_linked(tmp_path: Path) -> None:
    record_runs(tmp_path, "sqlite:////home/me/digitflow/mlflow.db")
    section = mlflow_runs_section({"MLFLOW_TRACKING_URI": SERVER}, tmp_path)
    assert "](" not in section
    assert "not the server" in section

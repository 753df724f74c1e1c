"""End to end: the real `dvc repro` in a temporary copy of the project, on real data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from digitflow.testing import set_params
from tests.conftest import make_project_copy, run

pytestmark = pytest.mark.e2e

# The README's MNIST settings: a few large batches instead of digits' many small ones.
MNIST_TORCH_SETTINGS = {"lr": 0.003, "batch_size": 2048, "epochs": 25, "weight_decay": 0.0}
TRAINING_STAGES = {"train_sklearn": "sklearn", "train_torch": "torch"}


def stages_run(output: str) -> list[str]:
    """Names of the stages DVC executed (not skipped, not restored) in a `dvc repro` output."""
    return re.findall(r"Running stage '([^']+)'", output)


def read_metrics(project: Path) -> dict:
    return json.loads((project / "metrics" / "evaluate.json").read_text())


def mlflow_runs(project: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digitflow")
    assert experiment is not None, "the pipeline created no 'digitflow' experiment"
    return client.search_runs([experiment.experiment_id])


def torch_run_ids(project: Path) -> set[str]:
    return {r.info.run_id for r in mlflow_runs(project) if r.data.tags["digitflow.stage"] == "train_torch"}


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after one full `dvc repro` on the embedded digits data."""
    project = make_project_copy(tmp_path_factory.mktemp("digits") / "project")
    result = run(project, "dvc", "repro")
    assert stages_run(result.stdout) == [
        "fetch",
        "preprocess",
        "split",
        "train_sklearn",
        "train_torch",
        "evaluate",
        "report",
    ]
    return project


def test_digits_models_beat_the_reference_notebook(digits_project: Path) -> None:
    metrics = read_metrics(digits_project)
    assert set(metrics) == {"sklearn", "torch"}
    for model, values in metrics.items():
        assert values["test_accuracy"] >= 0.95, f"{model}: {values}"
        assert 0 < values["test_log_loss"] < 0.5
        assert {"test_precision_macro", "test_recall_macro", "test_f1_macro"} <= set(values)
    confusion = (digits_project / "metrics/confusion/sklearn.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted"
    assert len(confusion) == 1 + 414  # the classic split's test set


def test_digits_runs_are_tracked_one_per_model(digits_project: Path) -> None:
    runs = mlflow_runs(digits_project)
    by_stage = {run.data.tags["digitflow.stage"]: run for run in runs}
    assert sorted(by_stage) == sorted(TRAINING_STAGES)
    assert len(runs) == 2
    metrics = read_metrics(digits_project)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{digits_project / 'mlflow.db'}")
    for stage, model in TRAINING_STAGES.items():
        tracked = by_stage[stage]
        assert tracked.info.status == "FINISHED"
        assert tracked.data.params["dataset"] == "digits"
        assert tracked.data.params["scaling"] == "standard"
        assert tracked.data.metrics["test_accuracy"] == pytest.approx(metrics[model]["test_accuracy"])
        assert "val_accuracy" in tracked.data.metrics
        artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
        assert {"test_confusion_matrix.json", "test_confusion_matrix.png", "val_confusion_matrix.json"} <= artifacts
        assert tracked.data.tags["digitflow.git_commit"] != "unknown"
        assert any(tag.startswith("dvc.input.data/") for tag in tracked.data.tags)
        run_file = json.loads((digits_project / f"models/{model}/mlflow_run.json").read_text())
        assert run_file["run_id"] == tracked.info.run_id
    torch_run = by_stage["train_torch"]
    assert torch_run.data.params["lr"] == str(
        yaml.safe_load((digits_project / "params.yaml").read_text())["train_torch"]["lr"]
    )
    epochs = int(torch_run.data.params["epochs"])
    assert len(client.get_metric_history(torch_run.info.run_id, "val_loss")) == epochs
    assert by_stage["train_sklearn"].data.params["C"] == "1.0"
    logged = client.search_logged_models(experiment_ids=[torch_run.info.experiment_id])
    assert {m.source_run_id for m in logged} == {r.info.run_id for r in runs}


def test_digits_report_and_evaluation_outputs(digits_project: Path) -> None:
    report = (digits_project / "reports/report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(links) == 8
    for link in links:
        figure = digits_project / "reports" / link
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    assert "| scikit-learn LogisticRegression |" in report
    assert "| PyTorch logistic regression |" in report
    evaluation = digits_project / "reports/evaluation"
    assert (evaluation / "evaluation.log").read_text().startswith("Evaluation on the digits test set (414 images)")
    assert (evaluation / "evaluation.xlsx").read_bytes()[:2] == b"PK"
    history = (digits_project / "metrics/train_torch_history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy"


def test_dvc_tools_read_the_pipeline(digits_project: Path) -> None:
    shown = json.loads(run(digits_project, "dvc", "metrics", "show", "--json").stdout)
    assert "metrics/evaluate.json" in json.dumps(shown)
    plots = json.loads(run(digits_project, "dvc", "plots", "show", "--json").stdout)["data"]
    confusion = {f"metrics/confusion/{model}.csv" for model in ("sklearn", "torch")}
    assert set(plots) == {"loss", "metrics/train_torch_history.csv", *confusion}


def test_second_repro_runs_nothing(digits_project: Path) -> None:
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout


def test_torch_param_change_reruns_only_downstream(digits_project: Path) -> None:
    before = read_metrics(digits_project)
    set_params(digits_project, train_torch={"digits": {"epochs": 40}})
    diff = run(digits_project, "dvc", "params", "diff", "--json").stdout
    change = json.loads(diff)["params.yaml"]["train_torch.digits.epochs"]
    assert (change["old"], change["new"]) == (50, 40)
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == ["train_torch", "evaluate", "report"]
    after = read_metrics(digits_project)
    assert after["sklearn"] == before["sklearn"]
    runs = mlflow_runs(digits_project)
    assert sorted(r.data.tags["digitflow.stage"] for r in runs) == ["train_sklearn", "train_torch", "train_torch"]


def test_same_params_give_identical_metrics(digits_project: Path, tmp_path: Path) -> None:
    """A second clean copy with the same params, run from scratch, reproduces every test metric."""
    other = make_project_copy(tmp_path / "again")
    shutil.copy(digits_project / "params.yaml", other / "params.yaml")
    run(other, "dvc", "repro")
    assert read_metrics(other) == read_metrics(digits_project)


def test_diverging_training_stops_cleanly(project_copy: Path) -> None:
    set_params(project_copy, train_torch={"optimizer": "sgd", "lr": 1e38})
    result = run(project_copy, "dvc", "repro", "train_torch", check=False)
    assert result.returncode != 0
    assert "Lower train_torch.lr" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (project_copy / "models/torch").exists()
    runs = mlflow_runs(project_copy)
    assert [r.info.status for r in runs if r.data.tags["digitflow.stage"] == "train_torch"] == ["FAILED"]


def test_invalid_params_stop_before_any_work(project_copy: Path) -> None:
    set_params(project_copy, split={"test_size": 1.5}, train_torch={"lr": -1, "optimiser": "adam"})
    result = run(project_copy, "dvc", "repro", check=False)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    for key in ("split.test_size", "train_torch.lr", "train_torch.optimiser"):
        assert key in message
    assert not (project_copy / "data/raw").exists()
    assert not (project_copy / "mlflow.db").exists()


@pytest.mark.mnist
def test_mnist_end_to_end_from_a_local_mirror(tmp_path: Path, mnist_mirror: str) -> None:
    """MNIST through the real download code, from an HTTP mirror on 127.0.0.1."""
    project = make_project_copy(tmp_path / "mnist")
    set_params(
        project,
        data={"dataset": "mnist"},
        fetch={"mirrors": [mnist_mirror]},
        train_torch=MNIST_TORCH_SETTINGS,
    )
    result = run(project, "dvc", "repro")
    assert "Running stage 'report'" in result.stdout
    metrics = read_metrics(project)
    for model, values in metrics.items():
        assert values["test_accuracy"] >= 0.92, f"{model}: {values}"
    assert len((project / "metrics/confusion/torch.csv").read_text().splitlines()) == 1 + 10_000
    raw = project / "data/raw/MNIST/raw"
    assert sorted(p.name for p in raw.glob("*.gz")) == sorted(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
    )


def test_model_restored_from_run_cache_keeps_its_mlflow_run(digits_project: Path) -> None:
    """Going back to earlier train_torch params restores that model from DVC's run-cache instead of
    retraining it; evaluate (re-run because the sklearn model changed at the same time) logs the torch
    results into the MLflow run that trained the restored model, so they are not orphaned."""
    params = yaml.safe_load((digits_project / "params.yaml").read_text())
    epochs, c = params["train_torch"]["digits"]["epochs"], params["train_sklearn"]["C"]
    run(digits_project, "dvc", "repro")
    original = json.loads((digits_project / "models/torch/mlflow_run.json").read_text())["run_id"]
    set_params(digits_project, train_torch={"digits": {"epochs": epochs - 5}})
    run(digits_project, "dvc", "repro")
    set_params(digits_project, train_torch={"digits": {"epochs": epochs}}, train_sklearn={"C": c / 2})
    torch_runs_before = {
        r.info.run_id for r in mlflow_runs(digits_project) if r.data.tags["digitflow.stage"] == "train_torch"
    }
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == ["train_sklearn", "evaluate", "report"]
    assert "Stage 'train_torch' is cached - skipping run" in result.stdout
    assert json.loads((digits_project / "models/torch/mlflow_run.json").read_text())["run_id"] == original
    assert torch_run_ids(digits_project) == torch_runs_before
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{digits_project / 'mlflow.db'}")
    history = client.get_metric_history(original, "test_accuracy")
    assert len(history) == 2  # its first evaluation, and this one
    assert history[-1].value == pytest.approx(read_metrics(digits_project)["torch"]["test_accuracy"])
    assert client.get_run(original).info.status == "FINISHED"

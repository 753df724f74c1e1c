"""`digitflow ui` without a browser: the MLflow UI addresses, the saved views in a real MLflow store, the
terminal's comparison table, and the messages before any server starts. (The browser test is in
test_pipeline.py, against a reproduced project.)"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import mlflow
import pytest

from digitflow.core.errors import DigitflowError
from digitflow.tracking.links import COMPARED_METRICS, COMPARISON, RunsView, run_url, runs_url, save_view, study_view
from digitflow.tracking.store import prepare_experiment
from digitflow.tracking.ui import browser_available, open_experiment, runs_table, serves_store
from tests.conftest import PROJECT_ROOT, run

SERVER = "https://mlflow.example.org/"
SEARCH_PARAMETERS = {"searchFilter", "orderByKey", "orderByAsc", "startTime", "lifecycleFilter", "datasetsFilter"}


def query(url: str) -> tuple[str, dict[str, str]]:
    """The route and the parameters of an address in MLflow's hash router (``/#/route?a=1``)."""
    route, _, parameters = urlsplit(url).fragment.partition("?")
    return route, {key: values[0] for key, values in parse_qs(parameters, strict_parsing=True).items()}


# --- addresses ------------------------------------------------------------------------------------


def test_the_comparison_address_opens_the_saved_view_in_model_training() -> None:
    url = runs_url(SERVER, "12", COMPARISON)
    assert url.startswith("https://mlflow.example.org/#/")  # one slash, whatever the server's ends with
    route, parameters = query(url)
    assert route == "/experiments/12/runs"
    assert parameters == {"workflowType": "machine_learning", "viewStateShareKey": "digitflow-comparison"}
    # A search parameter in the address would stop the UI from loading the view at all.
    assert not SEARCH_PARAMETERS & set(parameters)
    assert query(runs_url(SERVER, "12", COMPARISON, charts=True))[1] == {**parameters, "compareRunsMode": "CHART"}


def test_without_a_saved_view_the_address_filters_and_sorts_itself() -> None:
    view = study_view("digits-tune", metric="val_accuracy", ascending=False)
    route, parameters = query(runs_url(SERVER, "3", view, saved=False))
    assert route == "/experiments/3/runs"
    assert parameters == {
        "workflowType": "machine_learning",
        "orderByKey": "metrics.`val_accuracy`",
        "orderByAsc": "false",
        "searchFilter": "tags.`digitflow.sweep.study` = 'digits-tune'",
    }


def test_a_run_address_keeps_the_model_training_sidebar() -> None:
    route, parameters = query(run_url("http://127.0.0.1:5000", "1", "abc123"))
    assert (route, parameters) == ("/experiments/1/runs/abc123", {"workflowType": "machine_learning"})


# --- saved views ----------------------------------------------------------------------------------


def test_the_comparison_view_sorts_by_test_accuracy_and_shows_the_four_metrics() -> None:
    state = COMPARISON.state()
    assert (state["orderByKey"], state["orderByAsc"], state["searchFilter"]) == ("metrics.`test_accuracy`", False, "")
    assert state["selectedColumns"] == [f"metrics.`{m}`" for m in COMPARED_METRICS]
    charts = state["compareRunCharts"]
    assert [(c["type"], c["metricKey"]) for c in charts] == [("BAR", m) for m in COMPARED_METRICS]
    sections = {s["uuid"] for s in state["compareRunSections"]}
    assert {c["metricSectionId"] for c in charts} == sections  # every chart is in a section the view defines
    assert not any(c["isGenerated"] for c in charts)  # generated charts are the UI's to rebuild


def test_a_study_view_ranks_the_optimised_models_runs_and_charts_its_params() -> None:
    view = study_view("s-1.b", "torch", "val_log_loss", True, ("lr", "batch_size"))
    state = view.state()
    assert state["searchFilter"] == "tags.`digitflow.sweep.study` = 's-1.b' and tags.`digitflow.model` = 'torch'"
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`val_log_loss`", True)
    assert state["selectedColumns"][:2] == ["metrics.`val_log_loss`", "metrics.`test_log_loss`"]
    assert state["selectedColumns"][-2:] == ["params.`lr`", "params.`batch_size`"]
    parallel = state["compareRunCharts"][0]
    assert (parallel["type"], parallel["selectedParams"], parallel["selectedMetrics"]) == (
        "PARALLEL", ["lr", "batch_size"], ["val_log_loss"]
    )  # fmt: skip
    assert view.tag == "mlflow.sharedViewState.digitflow-sweep-s-1.b"
    assert study_view("s").search_filter == "tags.`digitflow.sweep.study` = 's'"  # no model: both models' runs


def test_a_stored_view_reads_back_as_written() -> None:
    view = study_view("digits-tune", "torch", "val_accuracy", False, ("lr", "batch_size"))
    envelope = json.loads(view.tag_value(created_ms=5))
    assert set(envelope) == {"name", "createdAt", "updatedAt", "state"}  # the UI's saved-view envelope
    assert envelope["createdAt"] == 5
    assert isinstance(envelope["state"], str)  # the state is JSON in a string, as the UI stores it
    back = RunsView.from_tag(view.tag, view.tag_value())
    assert back == view
    assert RunsView.from_tag(COMPARISON.tag, COMPARISON.tag_value()) == COMPARISON


def test_views_are_saved_once_and_updated_when_they_change(tmp_path: Path) -> None:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("views", artifact_location=(tmp_path / "a").as_uri())

    def stored() -> str:
        return client.get_experiment(experiment_id).tags[COMPARISON.tag]

    save_view(client, experiment_id, COMPARISON, {})
    first = stored()
    save_view(client, experiment_id, COMPARISON, client.get_experiment(experiment_id).tags)
    assert stored() == first  # unchanged: not rewritten (same updatedAt)
    changed = RunsView(**{**COMPARISON.__dict__, "metrics": ("test_accuracy",)})
    save_view(client, experiment_id, changed, client.get_experiment(experiment_id).tags)
    assert json.loads(stored())["createdAt"] == json.loads(first)["createdAt"]
    assert RunsView.from_tag(COMPARISON.tag, stored()).metrics == ("test_accuracy",)


def test_preparing_the_experiment_saves_the_comparison_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the store's lock file goes beside it
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = prepare_experiment("digitflow", uri)
    tags = mlflow.MlflowClient(uri).get_experiment(experiment_id).tags
    assert RunsView.from_tag(COMPARISON.tag, tags[COMPARISON.tag]) == COMPARISON
    assert prepare_experiment("digitflow", uri) == experiment_id  # a second stage finds it as it is


# --- the terminal's table -------------------------------------------------------------------------


def log_run(client: mlflow.MlflowClient, experiment_id: str, name: str, model: str, **values: float | str) -> None:
    tags = {"mlflow.runName": name, "digitflow.model": model, "digitflow.dataset": "digits"}
    tags.update({k: v for k, v in values.items() if isinstance(v, str) and k.startswith("digitflow")})
    run = client.create_run(experiment_id, tags=tags)
    for key, value in values.items():
        if isinstance(value, float):
            client.log_metric(run.info.run_id, key, value)
        elif not key.startswith("digitflow"):
            client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An experiment with runs as the pipeline and a sweep log them, and a failed run without metrics."""
    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("digitflow", artifact_location=(tmp_path / "a").as_uri())
    log_run(client, experiment_id, "sklearn-digits-1", "sklearn", test_accuracy=0.95, test_log_loss=0.2,
            val_accuracy=0.97, val_log_loss=0.14, C="1.0")  # fmt: skip
    log_run(client, experiment_id, "torch-digits-1", "torch", test_accuracy=0.9565217391, test_log_loss=0.177,
            val_accuracy=0.98, val_log_loss=0.118, lr="0.015")  # fmt: skip
    log_run(client, experiment_id, "torch-digits-broken", "torch")  # killed before it logged anything
    for trial, loss in enumerate([0.3, 0.1]):
        log_run(client, experiment_id, f"torch-digits-tune-{trial}", "torch", val_log_loss=loss, test_log_loss=loss,
                lr=str(0.1 / (trial + 3)), **{"digitflow.sweep.study": "tune"})  # fmt: skip
    log_run(client, experiment_id, "sklearn-digits-tune-0", "sklearn", val_log_loss=0.05, C="0.5",
            **{"digitflow.sweep.study": "tune"})  # the study's other model: not what it optimised  # fmt: skip
    mlflow.set_tracking_uri(uri)
    yield experiment_id
    mlflow.set_tracking_uri(None)


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


def test_the_table_lists_runs_best_test_accuracy_first(store: str) -> None:
    table = rows(runs_table(store, COMPARISON))
    assert table[0] == ["run", "model", "dataset", *COMPARED_METRICS]
    assert table[1] == ["torch-digits-1", "torch", "digits", "0.9565", "0.1770", "0.9800", "0.1180"]
    assert table[2] == ["sklearn-digits-1", "sklearn", "digits", "0.9500", "0.2000", "0.9700", "0.1400"]
    # Runs without the metric come last, with "-" where a value is missing.
    assert {tuple(row[:3]) for row in table[3:]} == {
        ("torch-digits-broken", "torch", "digits"), ("torch-digits-tune-0", "torch", "digits"),
        ("torch-digits-tune-1", "torch", "digits"), ("sklearn-digits-tune-0", "sklearn", "digits"),
    }  # fmt: skip
    assert ["-", "-", "-", "-"] in [row[3:] for row in table[3:]]


def test_the_table_of_a_study_shows_its_runs_by_its_metric_with_the_params(store: str) -> None:
    view = study_view("tune", "torch", "val_log_loss", True, ("lr",))
    table = rows(runs_table(store, view))
    assert table[0] == [
        "run",
        "model",
        "dataset",
        "val_log_loss",
        "test_log_loss",
        "test_accuracy",
        "val_accuracy",
        "lr",
    ]
    assert [row[0] for row in table[1:]] == ["torch-digits-tune-1", "torch-digits-tune-0"]
    assert table[1][3:] == ["0.1000", "0.1000", "-", "-", "0.025"]
    assert table[2][-1] == "0.03333"  # 0.03333333333333333 as logged, to 4 significant digits
    assert runs_table(store, study_view("nothing")) == "no runs match tags.`digitflow.sweep.study` = 'nothing'"


def test_the_table_says_when_it_shows_only_the_first_runs(store: str) -> None:
    table = runs_table(store, COMPARISON, rows=2).splitlines()
    assert len(table) == 1 + 2 + 1
    assert table[-1] == "(the first 2 runs; the UI lists them all)"


# --- before any server starts ---------------------------------------------------------------------


def test_no_store_yet_says_to_run_the_pipeline_and_creates_nothing(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "params.yaml", project / "params.yaml")
    result = run(project, "digitflow", "ui", "--no-browser", check=False)
    assert result.returncode == 1
    assert "run `dvc repro` first" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert not (project / "mlflow.db").exists()
    mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_experiments()  # an empty store: no experiment
    with pytest.raises(DigitflowError, match="no experiment 'digitflow' yet: run `dvc repro` first"):
        open_experiment(f"sqlite:///{project / 'mlflow.db'}", "digitflow")


def test_nothing_listening_is_not_a_server_of_the_store() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert serves_store(port, experiment=None) is None


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", False),  # an SSH session or CI: webbrowser would start a text browser here
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({}, "darwin", True),
        ({}, "win32", True),
    ],
)
def test_a_browser_opens_only_where_there_is_a_display(environ: dict[str, str], platform: str, expected: bool) -> None:
    assert browser_available(environ, platform) is expected

"""End to end: the real `dvc repro` in a temporary copy of the project, on real data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from digitflow.core import dvc_files
from digitflow.core.determinism import cpu_has_avx2
from digitflow.tracking.links import COMPARED_METRICS, COMPARISON, view_is_current
from tests.conftest import PROJECT_ROOT, WARM_SERVER_DIR, copy_project, git, make_project_copy, run
from tests.support import browser
from tests.support.numbers import differences
from tests.support.project import set_params
from tests.support.readme import readme_command
from tests.support.warm import served

pytestmark = pytest.mark.e2e
RENDER_PLOTS = Path(__file__).resolve().parents[1] / "support" / "render_plots.js"

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


def repro_output(project: Path) -> str:
    """What the fixture's `dvc repro` printed, standard output and error, without a terminal."""
    return (project.parent / "repro-output.txt").read_text()


@pytest.fixture(scope="module")
def digits_project(reproduced_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after one full `dvc repro` (the README's command) on the embedded digits: a copy of the
    session's reproduced project, for this module to change. Every stage of that repro ran warm (the
    session's server for its environment was started first)."""
    ran = stages_run(repro_output(reproduced_digits))
    # Every stage but validate (no outputs, and its inputs are as dvc.lock recorded them).
    assert ran == [stage for stage in dvc_files.stages(PROJECT_ROOT / "dvc.yaml") if stage != "validate"]
    assert served(WARM_SERVER_DIR, reproduced_digits) == [(f"stages.{stage}", "exit 0") for stage in ran]
    project = copy_project(reproduced_digits, tmp_path_factory.mktemp("digits") / "project")
    shutil.copy(reproduced_digits.parent / "repro-output.txt", project.parent / "repro-output.txt")
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
        record = json.loads((digits_project / f"metrics/runs/{model}.json").read_text())[model]
        assert record["mlflow_run_id"] == tracked.info.run_id
    torch_run = by_stage["train_torch"]
    assert torch_run.data.params["lr"] == str(
        yaml.safe_load((digits_project / "params.yaml").read_text())["train_torch"]["lr"]
    )
    epochs = int(torch_run.data.params["epochs"])
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):  # once per epoch, at its step
        history = client.get_metric_history(torch_run.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(1, epochs + 1)), key
    for tracked in runs:
        for key in tracked.data.metrics:
            steps = [m.step for m in client.get_metric_history(tracked.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{key} logged twice at a step"
        # Names tell runs apart; datasets are logged as inputs with their digests.
        assert tracked.info.run_name.startswith(f"{tracked.data.tags['digitflow.model']}-digits-")
        contexts = {d.tags[0].value: d.dataset for d in tracked.inputs.dataset_inputs}
        assert set(contexts) == {"training", "validation", "test"}
        assert tracked.data.tags["digitflow.test_sets"] == f'["{contexts["test"].digest}"]'
        assert tracked.data.tags["digitflow.git_dirty"] == "false"
    experiment = client.get_experiment(torch_run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert view_is_current(COMPARISON, experiment.tags)  # the UI's saved view that `digitflow ui` opens
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


@pytest.mark.skipif(not cpu_has_avx2(), reason="the committed results were made on the pinned AVX2 code path")
def test_fresh_run_reproduces_the_committed_results(digits_project: Path) -> None:
    """The metric and plot files in git are what a fresh `dvc repro` of the committed params gives: the same
    bytes on the machine that made them, and on any x86-64 machine with AVX2 (digitflow/core/determinism.py)
    the same numbers within 1e-6, since a last bit can cross a rounding boundary of the 6 decimals written
    (tests/support/numbers.py); only the MLflow run ids differ."""
    ours, committed = result_bytes(digits_project), result_bytes(PROJECT_ROOT)
    metric_files = [name for name in committed if name.startswith("metrics/")]
    assert len(metric_files) >= 6
    found = {name: differences(ours[name].decode(), committed[name].decode(), name) for name in metric_files}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_output_without_a_terminal_is_a_few_plain_lines(digits_project: Path) -> None:
    output = repro_output(digits_project)
    assert "\r" not in output
    # DVC's three lines for each stage that runs (name, command, a blank) and its closing advice, and a line
    # or two of each stage's own: 62 lines for the nine stages of a fresh clone.
    assert len(output.splitlines()) < 65, output
    epochs = [line for line in output.splitlines() if line.startswith("[train_torch] epoch ")]
    assert [line.split(":")[0] for line in epochs] == [f"[train_torch] epoch {e}/50" for e in (10, 20, 30, 40, 50)]
    assert "val_acc" in epochs[-1]


def test_a_clean_repro_leaves_committed_files_as_they_were(digits_project: Path) -> None:
    """The copy was committed with the project's metrics and plots files; reproducing it changes none
    of them (within 1e-6, tests/support/numbers.py: they were made on another machine), and nothing but
    dvc.lock (the hashes of each training record, metrics/runs/, which holds its new MLflow run id; the
    models themselves are byte-identical)."""
    changed = [line[3:] for line in git(digits_project, "status", "--porcelain").splitlines()]
    assert [path for path in changed if path != "dvc.lock" and not path.startswith("metrics/")] == [], changed
    for path in changed:
        if path == "dvc.lock":
            continue
        before = git(digits_project, "show", f"HEAD:{path}")
        assert differences((digits_project / path).read_text(), before, path) == []
    record = json.loads((digits_project / "metrics/runs/torch.json").read_text())
    assert set(record["torch"]) == {
        "mlflow_run_id",
        "mlflow_experiment_id",
        "tracking_uri",
        "registered_model",
        "model_version",
        "fit_seconds",
        "epochs",
    }
    for model in TRAINING_STAGES.values():
        metrics = json.loads((digits_project / f"metrics/train_{model}.json").read_text())
        assert set(metrics) == {"train_accuracy", "train_log_loss", "val_accuracy", "val_log_loss"}


def test_readme_metrics_show(digits_project: Path) -> None:
    """Test metrics of both models, then train / validation accuracy and log loss: nothing per-run."""
    shown = run(digits_project, "bash", "-c", readme_command("dvc metrics show")).stdout
    header = shown.splitlines()[0].split()
    for model in TRAINING_STAGES.values():
        for metric in ("test_accuracy", "test_log_loss", "test_f1_macro"):
            assert f"{model}.{metric}" in header
    assert {"train_accuracy", "val_accuracy", "val_log_loss"} <= set(header)
    assert len(header) == 1 + 10 + 4, header
    for noise in ("fit_seconds", "mlflow_run_id", "n_iter", "epochs"):
        assert noise not in shown


def test_readme_params_diff(digits_project: Path) -> None:
    params = digits_project / "params.yaml"
    original = params.read_text()
    try:
        set_params(digits_project, train_sklearn={"C": 0.5})
        shown = run(digits_project, "bash", "-c", readme_command("dvc params diff")).stdout
    finally:
        params.write_text(original)
    rows = [line.split() for line in shown.splitlines()[1:] if line.strip()]
    assert rows == [["params.yaml", "train_sklearn.C", "1.0", "0.5"]], shown


def test_confusion_plots_have_actual_rows_and_predicted_columns(digits_project: Path) -> None:
    plots = json.loads(run(digits_project, "dvc", "plots", "show", "--json").stdout)["data"]
    titles = {"sklearn": "scikit-learn: test confusion matrix", "torch": "PyTorch: test confusion matrix"}
    for model, title in titles.items():
        spec = plots[f"metrics/confusion/{model}.csv"][0]["content"]
        assert spec["title"]["text"] == title
        encoding = spec["spec"]["encoding"]
        assert (encoding["x"]["field"], encoding["y"]["field"]) == ("predicted", "actual")


@pytest.mark.skipif(not (shutil.which("npm") and shutil.which("node")), reason="needs Node.js (npm and node)")
def test_readme_offline_plots(digits_project: Path) -> None:
    """The offline page holds Vega itself: every plot renders in Node from the page's own scripts."""
    run(digits_project, "bash", "-c", readme_command("digitflow offline-plots"))
    run(digits_project, "bash", "-c", readme_command("dvc plots show --html-template"))
    page = digits_project / "dvc_plots/index.html"
    assert "cdn.jsdelivr" not in page.read_text()
    rendered = json.loads(run(digits_project, "node", str(RENDER_PLOTS), str(page)).stdout)
    assert rendered["scripts"] == ["vega", "vega-lite", "vega-embed"]
    assert sorted(rendered["titles"]) == sorted(
        [
            "PyTorch loss per epoch",
            "PyTorch validation accuracy per epoch",
            "scikit-learn: test confusion matrix",
            "PyTorch: test confusion matrix",
        ]
    )


def terminal_order(output: str, names: list[str]) -> list[str]:
    """The run names in the order `digitflow ui`'s table lists them."""
    rows = [line.split()[0] for line in output.splitlines() if line.split() and line.split()[0] in names]
    return rows


def test_digitflow_ui_opens_the_comparison_in_a_browser(digits_project: Path, tmp_path: Path) -> None:
    """The README's `digitflow ui`, as written, on a machine without a display; headless Chromium opens what
    it prints as a new visitor would: "Model training" selected, both runs, best test accuracy first, with
    their test and validation metrics as columns, and the charts of those metrics. The experiment's plain
    address (what `mlflow ui` alone leads to) shows the GenAI overview and no run: this test tells them apart."""
    runs = mlflow_runs(digits_project)
    names = [r.info.run_name for r in runs]
    with browser.digitflow_ui(digits_project, readme_command("digitflow ui")) as ui:
        order = terminal_order(ui.output, names)
        assert sorted(order) == sorted(names), ui.output
        for tracked in runs:  # the terminal's table: model, dataset, test accuracy of each run
            row = next(line for line in ui.output.splitlines() if line.startswith(tracked.info.run_name + " "))
            assert row.split()[1:4] == [
                tracked.data.tags["digitflow.model"], "digits", f"{tracked.data.metrics['test_accuracy']:.4f}"
            ]  # fmt: skip

        table = browser.render(
            ui.runs_url, lambda text: all(n in text for n in names) and "val_log_loss" in text, tmp_path / "runs.png"
        )
        assert table.selected_workflow == "Model training"
        assert all(metric in table.text for metric in COMPARED_METRICS), table.text
        for tracked in runs:
            assert str(tracked.data.metrics["test_accuracy"]) in table.text
            assert str(tracked.data.metrics["val_log_loss"]) in table.text
        assert sorted(names, key=table.text.index) == order, "the page and the terminal sort the runs alike"

        charts = browser.render(
            ui.charts_url,
            lambda text: all(m in text for m in COMPARED_METRICS) and all(text.count(n) >= 2 for n in names),
            tmp_path / "charts.png",
        )  # each run in the list and in the charts' legends
        assert charts.selected_workflow == "Model training"
        assert all(f"{r.data.metrics['test_log_loss']:.2f}" in charts.text for r in runs), charts.text

        experiment = f"{ui.server}/#/experiments/{runs[0].info.experiment_id}"
        plain = browser.render(
            experiment, lambda text: "Overview" in text or any(n in text for n in names), tmp_path / "plain.png"
        )
        assert plain.selected_workflow == "GenAI"
        assert not any(name in plain.text for name in names)

        port = ui.server.rsplit(":", 1)[1]  # a second `digitflow ui` finds the first one's server
        again = run(digits_project, "digitflow", "ui", "--no-browser", "--port", port)
        assert "already serves this store" in again.stderr
        assert ui.runs_url in again.stdout
        assert "press Ctrl-C" not in again.stdout


def test_second_repro_runs_nothing(digits_project: Path) -> None:
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout


def test_a_code_edit_reruns_exactly_the_stages_that_can_import_it(digits_project: Path, tmp_path: Path) -> None:
    """Through stage code (dvc.yaml): an edit of a module only evaluate imports re-runs code and evaluate
    (not report: evaluate wrote the same bytes); an edit no stage can import (the CLI) re-runs code alone;
    a new module a stage starts to import re-runs that stage, with no edit of dvc.yaml."""
    project = shutil.copytree(digits_project, tmp_path / "project", symlinks=True)

    def append(relative: str, text: str) -> None:
        path = project / relative
        path.write_text(path.read_text() + text)

    append("digitflow/evaluation/workbook.py", "\n# an edit\n")
    status = run(project, "dvc", "status").stdout
    assert re.search(r"code:\s+changed deps:\s+modified:\s+digitflow", status), status
    assert stages_run(run(project, "dvc", "repro").stdout) == ["code", "evaluate"]
    append("digitflow/cli/server.py", "\n# an edit\n")
    assert stages_run(run(project, "dvc", "repro").stdout) == ["code"]
    (project / "digitflow/data/extra.py").write_text("VALUE = 1\n")
    append("stages/split.py", "\nimport digitflow.data.extra  # noqa: E402, F401\n")
    assert stages_run(run(project, "dvc", "repro").stdout) == ["code", "split"]
    assert "digitflow/data/extra.py" in json.loads((project / "data/code/split.json").read_text())["files"]
    assert run(project, "dvc", "status").stdout.strip() == "Data and pipelines are up to date."


def test_readme_experiment_reruns_only_the_stages_that_read_the_setting(digits_project: Path, tmp_path: Path) -> None:
    """The tour's experiment, as written, in a copy of the reproduced project (it changes the workspace):
    only validate (any params.yaml edit), train_sklearn, evaluate and report run, and `dvc exp show` lists
    it with its C and accuracies."""
    project = shutil.copytree(digits_project, tmp_path / "project", symlinks=True)
    result = run(project, "bash", "-c", readme_command("dvc exp run -S train_sklearn.C=0.5"))
    assert stages_run(result.stdout) == ["validate", "train_sklearn", "evaluate", "report"]
    show = readme_command("dvc exp show --keep 'Experiment|(sklearn|torch)\\.test_accuracy|train_sklearn")
    table = run(project, "bash", "-c", show, COLUMNS="250").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert sorted(header) == ["Experiment", "sklearn.test_accuracy", "torch.test_accuracy", "train_sklearn.C"], table
    rows = [dict(zip(header[1:], line.split()[3:], strict=True)) for line in table.splitlines()
            if re.match(r"\s*[├└]── ", line)]  # fmt: skip
    assert [row["train_sklearn.C"] for row in rows] == ["0.5"], table
    # `dvc exp show` writes 5 significant digits (its --precision default): 0.95652 for 0.956522.
    shown = float(rows[0]["sklearn.test_accuracy"])
    assert shown == float(f"{read_metrics(project)['sklearn']['test_accuracy']:.5g}")


def test_torch_param_change_reruns_only_downstream(digits_project: Path) -> None:
    before = read_metrics(digits_project)
    set_params(digits_project, train_torch={"digits": {"epochs": 40}})
    diff = run(digits_project, "dvc", "params", "diff", "--json").stdout
    change = json.loads(diff)["params.yaml"]["train_torch.digits.epochs"]
    assert (change["old"], change["new"]) == (50, 40)
    result = run(digits_project, "dvc", "repro")
    # validate re-runs on any params.yaml edit (it has no outputs, so nothing else re-runs for it).
    assert stages_run(result.stdout) == ["validate", "train_torch", "evaluate", "report"]
    after = read_metrics(digits_project)
    assert after["sklearn"] == before["sklearn"]
    runs = mlflow_runs(digits_project)
    assert sorted(r.data.tags["digitflow.stage"] for r in runs) == ["train_sklearn", "train_torch", "train_torch"]


def run_snapshot(client: mlflow.MlflowClient, run_id: str) -> dict:
    """Everything about a run that a re-evaluation must not change."""
    tracked = client.get_run(run_id)
    return {
        "end_time": tracked.info.end_time,
        "status": tracked.info.status,
        "tags": tracked.data.tags,
        "metrics": {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in tracked.data.metrics},
        "artifacts": sorted((a.path, a.file_size) for a in client.list_artifacts(run_id)),
    }


def test_reevaluating_an_unchanged_model_adds_nothing_to_its_run(digits_project: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{digits_project / 'mlflow.db'}")
    torch_run = json.loads((digits_project / "metrics/runs/torch.json").read_text())["torch"]["mlflow_run_id"]
    before = run_snapshot(client, torch_run)
    c = yaml.safe_load((digits_project / "params.yaml").read_text())["train_sklearn"]["C"]
    set_params(digits_project, train_sklearn={"C": c * 0.7})
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == ["validate", "train_sklearn", "evaluate", "report"]
    assert run_snapshot(client, torch_run) == before
    set_params(digits_project, train_sklearn={"C": c})
    run(digits_project, "dvc", "repro")


def result_bytes(project: Path) -> dict[str, bytes]:
    """Every result file a run writes, as bytes: data, metrics, plots, report, figures, coefficients.

    Left out: the MLflow run ids (a new run is a new id: ``metrics/runs/`` and the ``mlflow_run_id``
    field of the metrics files) and the Excel workbook (the file format stores its save time)."""
    found = {}
    for folder in ("data", "models", "metrics", "reports"):
        for path in sorted((project / folder).rglob("*")) if (project / folder).exists() else []:
            relative = path.relative_to(project)
            if path.is_file() and path.suffix != ".xlsx" and relative.parts[:2] != ("metrics", "runs"):
                found[str(relative)] = path.read_bytes()
    for name in ("metrics/train_sklearn.json", "metrics/train_torch.json"):
        found[name] = re.sub(rb'\n\s*"mlflow_run_id": "\w+"', b"", found[name])
    return found


def trained_runs(project: Path) -> dict[str, dict]:
    """Each model's training run (the one its record names): params and metrics, with the training times
    and the thread count (a speed setting) left out."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    found = {}
    for model in TRAINING_STAGES.values():
        record = json.loads((project / f"metrics/runs/{model}.json").read_text())[model]
        tracked = client.get_run(record["mlflow_run_id"])
        found[model] = {
            "params": {k: v for k, v in tracked.data.params.items() if k != "threads"},
            "metrics": {k: v for k, v in tracked.data.metrics.items() if "seconds" not in k},
        }
    return found


def test_same_params_give_identical_bytes_across_runs_and_thread_counts(digits_project: Path, tmp_path: Path) -> None:
    """A second clean copy with the same params, run from scratch cold (the docs' `DIGITFLOW_SERVER=0 dvc
    repro`) with two PyTorch and OpenMP threads where the first ran warm on one, reproduces every result
    file byte for byte, and its MLflow runs have the same params and metrics: the thread count is a speed
    setting, and the warm server changes nothing but the time."""
    other = make_project_copy(tmp_path / "again")
    shutil.copy(digits_project / "params.yaml", other / "params.yaml")
    set_params(other, train_torch={"threads": 2})
    result = run(other, "bash", "-c", readme_command("DIGITFLOW_SERVER=0 dvc repro"), OMP_NUM_THREADS="2")
    assert "Running stage 'train_torch'" in result.stdout
    assert served(WARM_SERVER_DIR, other) == []
    assert read_metrics(other) == read_metrics(digits_project)
    ours, theirs = result_bytes(digits_project), result_bytes(other)
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if ours[name] != theirs[name]] == []
    # The models themselves are byte-identical, so dvc.lock hashes stay put across clean runs.
    model_files = sorted(p.relative_to(digits_project) for p in (digits_project / "models").rglob("*") if p.is_file())
    assert {"models/sklearn/model.npz", "models/torch/model.pt"} <= {p.as_posix() for p in model_files}
    for name in model_files:
        assert (other / name).read_bytes() == (digits_project / name).read_bytes(), name
    warm, cold = trained_runs(digits_project), trained_runs(other)
    assert warm == cold
    assert {"test_accuracy", "val_accuracy", "train_loss"} <= set(warm["torch"]["metrics"])


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


def test_model_restored_from_run_cache_keeps_its_mlflow_run(digits_project: Path) -> None:
    """Going back to earlier train_torch params restores that model from DVC's run-cache instead of
    retraining it; evaluate (re-run because the sklearn model changed at the same time) logs the torch
    results into the MLflow run that trained the restored model, so they are not orphaned."""
    params = yaml.safe_load((digits_project / "params.yaml").read_text())
    epochs, c = params["train_torch"]["digits"]["epochs"], params["train_sklearn"]["C"]
    run(digits_project, "dvc", "repro")
    original = json.loads((digits_project / "metrics/runs/torch.json").read_text())["torch"]["mlflow_run_id"]
    set_params(digits_project, train_torch={"digits": {"epochs": epochs - 5}})
    run(digits_project, "dvc", "repro")
    set_params(digits_project, train_torch={"digits": {"epochs": epochs}}, train_sklearn={"C": c / 2})
    torch_runs_before = {
        r.info.run_id for r in mlflow_runs(digits_project) if r.data.tags["digitflow.stage"] == "train_torch"
    }
    result = run(digits_project, "dvc", "repro")
    assert stages_run(result.stdout) == ["validate", "train_sklearn", "evaluate", "report"]
    assert "Stage 'train_torch' is cached - skipping run" in result.stdout
    assert json.loads((digits_project / "metrics/runs/torch.json").read_text())["torch"]["mlflow_run_id"] == original
    assert torch_run_ids(digits_project) == torch_runs_before
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{digits_project / 'mlflow.db'}")
    history = client.get_metric_history(original, "test_accuracy")
    assert len(history) == 1  # the same model on the same test set: nothing logged again
    assert history[-1].value == pytest.approx(read_metrics(digits_project)["torch"]["test_accuracy"])
    assert client.get_run(original).info.status == "FINISHED"

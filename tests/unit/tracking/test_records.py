"""digitflow.tracking.records and digitflow.reporting.offline_plots: what goes to git, and the offline plots page."""

from __future__ import annotations

import json
from pathlib import Path

from dvc_render.html import HTML

from digitflow.core import paths
from digitflow.evaluation.metrics import reviewed_metrics
from digitflow.reporting.offline_plots import build_template, dvc_vega_packages
from digitflow.tracking.records import read_run_info, write_training_record
from digitflow.tracking.runs import RunInfo


def test_reviewed_metrics_are_accuracy_and_log_loss_of_train_and_val() -> None:
    metrics = {
        f"{part}_{name}": 0.5
        for part in ("train", "val")
        for name in ("accuracy", "log_loss", "precision_macro", "recall_macro", "f1_macro")
    }
    metrics.update(fit_seconds=1.25, n_iter=11)
    assert list(reviewed_metrics(metrics)) == ["train_accuracy", "train_log_loss", "val_accuracy", "val_log_loss"]


def test_training_record_is_keyed_by_model_and_gives_back_the_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    info = RunInfo("abc123", "7", "sqlite:////repo/mlflow.db", "digitflow-torch", "3")
    write_training_record("torch", info, 0.123456, epochs=25)
    record = json.loads(paths.training_record_file("torch").read_text())
    assert record == {
        "torch": {
            "mlflow_run_id": "abc123",
            "mlflow_experiment_id": "7",
            "tracking_uri": "sqlite:////repo/mlflow.db",
            "registered_model": "digitflow-torch",
            "model_version": "3",
            "fit_seconds": 0.1235,
            "epochs": 25,
        }
    }
    assert read_run_info("torch") == info


def test_the_offline_page_asks_for_what_dvc_asks_for() -> None:
    assert [name for name, _ in dvc_vega_packages()] == ["vega", "vega-lite", "vega-embed"]


def test_the_offline_page_is_a_template_dvc_accepts() -> None:
    bundles = {"vega": "var a = '</script>';", "vega-lite": "var b = 1;", "vega-embed": "var c = '{x}';"}
    page = build_template(bundles)
    assert "{scripts}" not in page  # DVC would put its CDN tags there
    assert page.count("<script>") == 3
    assert "'<\\/script>'" in page  # cannot end its element early
    filled = HTML(page).with_element("<div id='plot'></div>").embed()  # DVC's own filling step
    assert "<div id='plot'></div>" in filled
    assert "{plot_divs}" not in filled
    assert "var c = '{x}';" in filled

"""A newcomer's first hour on a plain install: README command 1 (`pip install -e .`, no extra), then the
commands the README offers next, offline: `dvc repro`, `dvc plots show`, an MNIST experiment from a local
mirror, the README's queued grid on two workers, `digitflow predict` on a PNG, and `mlflow ui` listing the runs.

`.ci/run` runs this module first, in a venv holding README command 1's install and pytest alone, so a
first-hour command that needs an extra fails there (as every `dvc exp run` did while the committed
default remote was on S3, which needs dvc-s3). The tests pass with every extra too; `.ci/run` then
deselects them (`-m "not first_hour"`) as already run. One reproduced project serves all but the MNIST
test, whose dataset switch rebuilds everything anyway.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from digitflow.core.ports import free_port
from tests.conftest import copy_project, make_project_copy, pipeline_env, run
from tests.support.experiments import check_sweep, wait_for_queue
from tests.support.http import wait_for_json
from tests.support.readme import readme_command

pytestmark = [pytest.mark.first_hour, pytest.mark.e2e]

MODELS = ("sklearn", "torch")
PLOT_TITLES = ("scikit-learn: test confusion matrix", "PyTorch: test confusion matrix", "PyTorch loss per epoch")


@pytest.fixture(scope="module")
def project(reproduced_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone after the README's `dvc repro` on the embedded digits (the session's, copied)."""
    assert "Running stage 'report'" in (reproduced_digits.parent / "repro-output.txt").read_text()
    return copy_project(reproduced_digits, tmp_path_factory.mktemp("first-hour") / "project")


def store(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def repro_run_ids(project: Path) -> set[str]:
    """The MLflow runs that trained the workspace's two models (their training records)."""
    return {
        json.loads((project / f"metrics/runs/{model}.json").read_text())[model]["mlflow_run_id"] for model in MODELS
    }


def test_plots_show_draws_both_confusion_matrices_and_the_learning_curve(project: Path) -> None:
    result = run(project, "bash", "-c", readme_command("dvc plots show"))
    assert "failed to load" not in result.stdout + result.stderr
    page = (project / "dvc_plots/index.html").read_text()
    for title in PLOT_TITLES:
        assert title in page
    assert "cdn.jsdelivr.net/npm/vega@" in page  # DVC's own page loads Vega from the network


def test_dvc_reads_the_workspace_and_history_with_no_remote(project: Path) -> None:
    """`dvc data status` and `dvc plots diff` build the default remote's filesystem: with none committed,
    they work on a plain install (with the S3 remote they exited 255, or drew nothing)."""
    status = json.loads(run(project, "dvc", "data", "status", "--json").stdout)
    assert "unknown" not in status
    diff = run(project, "dvc", "plots", "diff", "HEAD", "--json")
    assert "failed to load" not in diff.stdout + diff.stderr
    plots = json.loads(diff.stdout)["data"]
    assert {"metrics/confusion/sklearn.csv", "metrics/confusion/torch.csv"} <= set(plots)


def photo(features: np.ndarray, size: int = 180) -> Image.Image:
    """An 8x8 digit as a user's photo of it: dark ink on off-white paper, a little noise, in colour."""
    ink = features.reshape(8, 8) / 16
    big = np.kron(ink, np.ones((size // 8, size // 8)))
    noise = np.random.default_rng(0).normal(0, 4, big.shape)
    grey = np.clip(240 - big * 200 + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def test_predict_prints_the_digit_of_a_png(project: Path, tmp_path: Path) -> None:
    """`digitflow predict` on a PNG made from a test image: the digit evaluate predicted, and the truth."""
    features = np.load(project / "data/processed/features.npy")
    with np.load(project / "data/split/indices.npz") as split:
        test_rows = split["test"]
    predicted = pd.read_csv(project / "reports/evaluation/predictions_torch.csv", index_col="test_index")
    confident = predicted[
        (predicted["predicted"] == predicted["actual"]) & (predicted.filter(like="prob_").max(axis=1) > 0.9)
    ]
    row = confident.index[confident["actual"] == 3][0]
    image = tmp_path / "my_three.png"
    photo(features[test_rows[row]]).save(image)
    line = run(project, "digitflow", "predict", str(image)).stdout.strip()
    assert re.fullmatch(rf"{re.escape(str(image))}: 3 \(probability \d\.\d{{3}}\)", line), line


def test_the_readme_grid_on_two_workers_lands_in_mlflow(project: Path) -> None:
    """The README's queued 2 x 2 grid, its commands as written, on `dvc queue start -j 2`: every experiment
    `Success`, each experiment's runs of both models in the repository's store tagged with its name, and
    `dvc exp show` listing them with their run ids (tests/support/experiments.py: check_sweep)."""
    run(project, "bash", "-c", readme_command("dvc exp run --queue"))
    run(project, "bash", "-c", readme_command("dvc queue start"))
    status = wait_for_queue(project, timeout=900)
    finished = [line.split()[-1] for line in status.splitlines() if re.match(r"[0-9a-f]{7} ", line)]
    assert finished == ["Success"] * 4, status
    check_sweep(project)


def test_mlflow_ui_lists_the_runs(project: Path) -> None:
    """`mlflow ui --backend-store-uri sqlite:///mlflow.db` on a free port, asked over its REST API."""
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=project, env=pipeline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        experiment = wait_for_json(f"{api}/experiments/get-by-name?experiment_name=digitflow", server)["experiment"]
        body = json.dumps({"experiment_ids": [experiment["experiment_id"]], "max_results": 1000}).encode()
        request = urllib.request.Request(f"{api}/runs/search", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            listed = {r["info"]["run_id"]: r["info"]["status"] for r in json.load(response)["runs"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert repro_run_ids(project) <= set(listed)
    assert {listed[run_id] for run_id in repro_run_ids(project)} == {"FINISHED"}


@pytest.mark.mnist
def test_mnist_end_to_end_from_a_local_mirror(tmp_path: Path, mnist_mirror: str) -> None:
    """The README's `dvc exp run -S data.dataset=mnist`, nothing else changed, through the real download
    code from an HTTP mirror on 127.0.0.1 (DIGITFLOW_MNIST_MIRRORS): both models reach 0.925."""
    project = make_project_copy(tmp_path / "mnist")
    command = readme_command("dvc exp run -S data.dataset=mnist")
    result = run(project, "bash", "-c", command, DIGITFLOW_MNIST_MIRRORS=mnist_mirror)
    assert "Running stage 'report'" in result.stdout
    assert "\r" not in result.stdout + result.stderr  # no download or training bars without a terminal
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert set(metrics) == set(MODELS)
    for model, values in metrics.items():
        assert values["test_accuracy"] >= 0.925, f"{model}: {values}"
    mnist_epochs = yaml.safe_load((project / "params.yaml").read_text())["train_torch"]["mnist"]["epochs"]
    assert json.loads((project / "metrics/runs/torch.json").read_text())["torch"]["epochs"] == mnist_epochs
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

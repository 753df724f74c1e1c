"""benchmarks/run.py --quick: the smoke mode runs end to end and writes sane, complete results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, pipeline_env

STAGES_IN_QUICK_MODE = ["validate", "fetch", "preprocess", "split", "train_sklearn", "train_torch"]


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory, shared_mnist: Path) -> dict:
    out = tmp_path_factory.mktemp("benchmark")
    command = [
        sys.executable,
        str(PROJECT_ROOT / "benchmarks" / "run.py"),
        "--quick",
        "--mnist-dir",
        str(shared_mnist),
        "--output",
        str(out / "results.json"),
        "--markdown",
        str(out / "table.md"),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=pipeline_env())
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "| Target | goal | measured | met |" in result.stdout
    assert (out / "table.md").read_text() in result.stdout
    return json.loads((out / "results.json").read_text())


def assert_accuracy(value: float) -> None:
    assert 0 < value <= 1


def test_notebook_reference(quick_results: dict) -> None:
    notebook = quick_results["notebook"]
    assert notebook["epochs"] == len(notebook["curve"]) >= 1
    assert notebook["seconds_per_epoch"] > 0
    assert notebook["n_test"] == 10_000
    for row in notebook["curve"]:
        assert row["train_seconds"] > 0
        assert_accuracy(row["test_accuracy"])
    assert notebook["final_test_accuracy"] > 0.5  # one epoch of SGD already learns something


def test_train_torch(quick_results: dict) -> None:
    ours = quick_results["train_torch"]
    assert ours["train_seconds"] > 0
    assert [row["epoch"] for row in ours["curve"]] == list(range(1, ours["params"]["epochs"] + 1))
    seconds = [row["seconds"] for row in ours["curve"]]
    assert seconds == sorted(seconds)
    assert seconds[0] > 0
    for row in ours["curve"]:
        assert_accuracy(row["test_accuracy"])
    assert ours["final_test_accuracy"] > 0.9
    assert set(ours["seconds_to"]) == {"0.92", "0.925"}
    assert ours["speedup_vs_notebook"] is None or ours["speedup_vs_notebook"] > 0


def test_sklearn(quick_results: dict) -> None:
    sk = quick_results["sklearn"]
    for name in ("defaults", "ours"):
        assert sk[name]["fit_seconds"] > 0
        assert sk[name]["n_iter"] >= 1
        assert sk[name]["test_accuracy"] > 0.8
        assert_accuracy(sk[name]["test_accuracy"])
    assert sk["defaults"]["settings"]["max_iter"] == 1000
    assert sk["fit_ratio"] == pytest.approx(sk["ours"]["fit_seconds"] / sk["defaults"]["fit_seconds"], rel=1e-2)


def test_stages_measured(quick_results: dict) -> None:
    stages = quick_results["pipeline"]["digits_stages"]
    assert list(stages) == STAGES_IN_QUICK_MODE
    for name, row in stages.items():
        assert row["seconds"] > 0, name
        assert 0 < row["cpu_seconds"] < 2 * row["seconds"] + 1, name  # at most both cores, all the time
        assert 10 < row["peak_rss_mb"] < 16_000, name
        assert 0 <= row["mlflow_seconds"] < row["seconds"], name
        assert 0 <= row["mlflow_share"] < 1, name
    for name in ("train_sklearn", "train_torch"):
        assert stages[name]["mlflow_seconds"] > 0
        assert stages[name]["mlflow_calls"]["mlflow.start_run"] == 1
    assert stages["fetch"]["mlflow_seconds"] == 0


def test_import_floor_and_params_error(quick_results: dict) -> None:
    pipeline = quick_results["pipeline"]
    floor = pipeline["import_floor"]
    assert floor["command"] == 'python -c "import torch, mlflow, sklearn, matplotlib"'
    assert 0 < floor["seconds"] < 120
    assert floor["cpu_seconds"] > 0
    error = pipeline["params_error"]
    assert "train_torch.lr" in error["message"], error["message"]
    # The message comes before any heavy import: well under the four libraries' import time.
    assert 0 < error["seconds"] < floor["seconds"] + 5


def test_targets_are_reported(quick_results: dict) -> None:
    targets = quick_results["targets"]
    assert len(targets) == 19
    by_name = {row["name"]: row for row in targets}
    assert by_name["warm: dvc repro digits from clean / F"]["met"] is None  # no dvc repro in quick mode
    assert by_name["dvc repro MNIST from clean (s)"]["met"] is None  # no dvc repro in quick mode
    assert by_name["train_torch training, busy / quiet"]["met"] is None  # nor the busy machine
    assert by_name["params error reported (s)"]["met"] is not None
    for row in targets:
        assert row["met"] in (True, False, None)
        if row["met"] is not None:
            assert row["measured"] is not None
    assert quick_results["quick"] is True
    assert quick_results["machine"]["cpus"] >= 1


def test_warm_server_measured_against_cold(quick_results: dict) -> None:
    """The quick mode's warm section: the server's start and memory, and the two training stages alone,
    cold then warm, with the import floor of the same minute."""
    warm = quick_results["warm"]
    assert 0 < warm["server_start_seconds"] < 300
    assert 100 < warm["server_memory"]["rss_mb"] < 16_000
    assert 0 < warm["server_memory"]["pss_mb"] <= warm["server_memory"]["rss_mb"]
    assert list(warm["stages"]) == ["train_sklearn", "train_torch"]
    for name, row in warm["stages"].items():
        assert row["floor"] > 0, name
        # A warm stage does not import the libraries: faster than the same stage cold, by far.
        assert row["warm"] < row["cold"] / 2, (name, row)
        assert row["cold_floors"] == pytest.approx(row["cold"] / row["floor"], rel=1e-2)

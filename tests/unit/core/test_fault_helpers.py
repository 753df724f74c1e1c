"""The small helpers behind issue 10: repair advice, debug switch, MLflow HTTP defaults, CPU pins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from digitflow.core import paths
from digitflow.core.determinism import AVX2_PINS, THREAD_PINS, pin_cpu_kernels
from digitflow.core.dvc_files import producing_stage
from digitflow.core.errors import InputError
from digitflow.core.inputs import read, read_npz, restore_hint
from digitflow.core.io import read_json
from digitflow.core.shell import debug_requested
from digitflow.tracking.client_settings import HTTP_DEFAULTS, apply_http_defaults
from digitflow.tracking.faults import store_repair_hint as store_hint
from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize(
    ("path", "stage", "cached"),
    [
        (paths.FEATURES_FILE, "preprocess", True),
        (paths.SPLIT_INDICES_FILE, "split", True),
        (paths.TORCH_MODEL_FILE, "train_torch", True),
        (paths.training_record_file("sklearn"), "train_sklearn", True),
        (paths.EVALUATE_METRICS_FILE, "evaluate", False),
        (paths.TORCH_HISTORY_FILE, "train_torch", False),
    ],
)
def test_the_stage_that_writes_a_file_comes_from_dvc_yaml(path, stage, cached):
    assert producing_stage(path, PROJECT_ROOT / "dvc.yaml") == (stage, cached)


def test_repair_advice(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    assert restore_hint(paths.TORCH_MODEL_FILE) == (
        "restore it with `dvc checkout --force train_torch`, or rebuild it with `dvc repro -f -s train_torch`"
    )
    # Uncached metrics live in git, not in DVC's cache.
    assert "git checkout -- metrics/evaluate.json" in restore_hint(paths.EVALUATE_METRICS_FILE)
    assert "dvc repro" in restore_hint(Path("somewhere/else.txt"))


def test_missing_and_damaged_files_name_the_file_and_keep_the_cause(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(PROJECT_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    with pytest.raises(InputError, match=r"data/processed/labels\.npy is missing; restore it with `dvc checkout"):
        read(paths.LABELS_FILE, np.load)
    broken = tmp_path / "mlflow_run.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match=r"mlflow_run\.json is damaged .*JSONDecodeError") as caught:
        read(broken, read_json)
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)
    garbage = tmp_path / "indices.npz"
    garbage.write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match=r"indices\.npz is damaged"):
        read_npz(garbage)
    damaged = tmp_path / "features.npy"
    damaged.write_bytes(b"garbage" * 50)
    with pytest.raises(InputError, match="pickled") as caught:
        read(damaged, np.load)
    assert "unsafely" not in str(caught.value)  # NumPy's advice to unpickle a damaged file is not passed on


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, False),
        (["--verbose"], {}, True),
        ([], {"DIGITFLOW_DEBUG": "1"}, True),
        ([], {"DIGITFLOW_DEBUG": "0"}, False),
        ([], {"DIGITFLOW_DEBUG": ""}, False),
    ],
)
def test_debug_switch(argv, environ, expected):
    assert debug_requested(argv, environ) is expected


def test_http_defaults_never_override_the_user():
    environ = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5"}
    apply_http_defaults(environ)
    assert environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]
    assert environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]


def test_store_hints():
    assert "chmod u+w /r/mlflow.db" in store_hint("sqlite:////r/mlflow.db", "attempt to write a readonly database")
    assert "mlflow db upgrade" in store_hint("sqlite:////r/mlflow.db", "file is not a database")
    server = store_hint("http://127.0.0.1:9")
    assert "MLFLOW_TRACKING_URI" in server
    assert "http://127.0.0.1:9" in server


def test_cpu_pins_keep_what_the_user_set():
    environ = {"ATEN_CPU_CAPABILITY": "default"}
    pinned = pin_cpu_kernels(environ, avx2=True)
    assert environ["ATEN_CPU_CAPABILITY"] == "default"
    assert pinned == {**THREAD_PINS, **{k: v for k, v in AVX2_PINS.items() if k != "ATEN_CPU_CAPABILITY"}}
    other: dict[str, str] = {}
    assert pin_cpu_kernels(other, avx2=False) == THREAD_PINS
    assert other == THREAD_PINS


def test_a_store_failure_never_shows_the_uris_password() -> None:
    """MLFLOW_TRACKING_URI may carry `user:password@`; the message ends up in terminals and CI logs."""
    from digitflow.core.errors import TrackingStoreError
    from digitflow.tracking.faults import store_errors

    uri = "https://ci-bot:s3cret-pass@mlflow.example.org"
    with pytest.raises(TrackingStoreError) as caught, store_errors(uri, "starting the run"):
        raise ConnectionError("Connection refused")
    assert "s3cret" not in str(caught.value)
    assert "the MLflow store at https://mlflow.example.org failed while starting the run" in str(caught.value)

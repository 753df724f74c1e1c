"""Faults, end to end (issue 10): the real stage commands on real files, a real MLflow server, real DVC.

One digits project is built once (``dvc repro`` under umask 022); each test that damages something works
in its own copy of it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from digitflow.core.ports import free_port
from tests.conftest import pipeline_env, run
from tests.support.project import set_params

pytestmark = pytest.mark.e2e

OUTPUT_FOLDERS = ("data", "models", "metrics", "reports")
HEAVY_MODULES = ("torch", "torchvision", "mlflow", "sklearn", "matplotlib")


@pytest.fixture(scope="module")
def built(reproduced_digits: Path) -> Path:
    """The digits project after one full `dvc repro`, run under umask 022 (the session's; copied, never
    changed, by each test that damages something)."""
    return reproduced_digits


@pytest.fixture
def project(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built project, to damage."""
    return Path(shutil.copytree(built, tmp_path / "project", symlinks=True))


def error_lines(stderr: str, stage: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"[{stage}] error:")]


def snapshot(project: Path, folder: str) -> dict[str, bytes]:
    root = project / folder
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def temporaries(project: Path) -> list[Path]:
    return [p for folder in OUTPUT_FOLDERS for p in (project / folder).rglob(".*.tmp")]


# --- 7. permissions ---------------------------------------------------------------------------------


def test_outputs_respect_the_umask(built: Path) -> None:
    checked = 0
    for folder in OUTPUT_FOLDERS:
        for path in [built / folder, *(built / folder).rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), f"{path.relative_to(built)} is {mode:o}"
            checked += 1
    assert checked > 30


# --- 4. any params edit is validated by the next dvc repro ----------------------------------------


def test_params_no_stage_reads_are_validated_without_rerunning_stages(project: Path) -> None:
    params_file = project / "params.yaml"
    good = params_file.read_text()
    raw = yaml.safe_load(good)
    raw["foo"] = 1
    raw["gate"]["max_drop_rell"] = 0.1
    raw["fetch"]["mirrors"] = []
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = run(project, "dvc", "repro", check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    for key in ("foo: unknown key", "gate.max_drop_rell: unknown key", "fetch.mirrors: List should have at least 1"):
        assert key in message
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["validate"]
    assert "Traceback" not in message

    # A valid edit that no other stage reads re-runs the check only.
    params_file.write_text(good)
    set_params(project, gate={"max_drop_rel": 0.03})
    result = run(project, "dvc", "repro")
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["validate"]


def test_a_failed_experiment_setting_and_a_missing_folder_are_named_before_any_work(project: Path) -> None:
    """`dvc exp run -S` with a bad value: the message says the value stays in params.yaml and how to put the
    committed file back; a data.folder that does not exist is named by the validate stage, before DVC
    reaches the fetch stage that depends on it."""
    result = run(project, "dvc", "exp", "run", "-S", "train_sklearn.C=-1", check=False)
    assert result.returncode != 0
    assert "train_sklearn.C: Input should be greater than 0 (got -1)" in result.stderr
    assert "params.yaml differs from the last commit" in result.stderr
    assert "`git checkout params.yaml` puts the committed one back" in result.stderr
    run(project, "git", "checkout", "params.yaml")
    missing = project.parent / "no-such-pictures"
    result = run(project, "dvc", "exp", "run", "-S", "data.dataset=folder", "-S", f"data.folder={missing}", check=False)
    assert result.returncode != 0
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["validate"]
    assert f"[validate] error: data.folder = {missing} does not exist: point data.folder" in result.stderr
    assert "No such file or directory" not in result.stdout + result.stderr
    run(project, "git", "checkout", "params.yaml")


# --- 6. params errors before heavy imports -----------------------------------------------------------


@pytest.mark.parametrize(
    "stage", ["validate", "fetch", "preprocess", "split", "check", "train_sklearn", "train_torch", "evaluate", "report"]
)
def test_bad_params_are_reported_before_heavy_imports(project_copy: Path, stage: str) -> None:
    set_params(project_copy, train_torch={"lr": float("inf")})
    result = run(project_copy, sys.executable, "-X", "importtime", "-m", f"stages.{stage}", check=False)
    assert result.returncode == 1
    assert error_lines(result.stderr, stage) == [f"[{stage}] error: params.yaml is invalid:"]
    assert "train_torch.lr: Input should be a finite number (got inf)" in result.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert imported.isdisjoint(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def test_data_stages_import_no_torch_mlflow_or_torchvision(project_copy: Path) -> None:
    """Digits' data stages run without the libraries only the training stages need (issue "Speed")."""
    for stage in ("code", "validate", "fetch", "preprocess", "split", "check"):
        result = run(project_copy, sys.executable, "-X", "importtime", "-m", f"stages.{stage}")
        imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
        assert imported.isdisjoint({"torch", "torchvision", "mlflow"}), (stage, sorted(imported & set(HEAVY_MODULES)))


def test_train_torch_reports_a_params_error_within_two_seconds(project_copy: Path) -> None:
    set_params(project_copy, train_torch={"lr": float("inf")})
    timings = []
    for _ in range(2):  # the better of two: the first may pay for a cold disk cache
        started = time.monotonic()
        result = run(project_copy, sys.executable, "-m", "stages.train_torch", check=False)
        timings.append(time.monotonic() - started)
        assert result.returncode == 1
    assert min(timings) < 2.0, timings


# --- 5. damaged or missing inputs -------------------------------------------------------------------


def garbage(path: Path) -> None:
    path.write_bytes(b"not what was written here \x00\xff" * 40)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "features": ("train_sklearn", "data/processed/features.npy", garbage, "damaged", "preprocess"),
    "labels": ("split", "data/processed/labels.npy", Path.unlink, "missing", "preprocess"),
    "torch model": ("evaluate", "models/torch/model.pt", garbage, "damaged", "train_torch"),
    "sklearn model": ("evaluate", "models/sklearn/model.npz", truncate, "damaged", "train_sklearn"),
    "run record": (
        "evaluate",
        "metrics/runs/torch.json",
        lambda p: p.write_text('{"torch": {"mlflow_run_id": '),
        "damaged",
        "train_torch",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_input_gives_one_message_with_the_repair(project: Path, case: str) -> None:
    stage, relative, damage, state, producer = DAMAGE[case]
    original = (project / relative).read_bytes()
    damage(project / relative)
    before = {folder: snapshot(project, folder) for folder in ("models", "metrics", "reports")}
    result = run(project, sys.executable, "-m", f"stages.{stage}", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr, stage)
    assert f"{relative} is {state}" in line
    assert f"`dvc checkout --force {producer}`" in line
    assert f"`dvc repro -f -s {producer}`" in line
    assert {folder: snapshot(project, folder) for folder in before} == before
    assert temporaries(project) == []
    # The advice works: DVC's cache restores exactly what the pipeline wrote.
    run(project, "dvc", "checkout", "--force", producer)
    assert (project / relative).read_bytes() == original


def test_verbose_and_debug_variable_show_the_traceback(project: Path) -> None:
    (project / "data/processed/labels.npy").unlink()
    for extra_args, env in (["--verbose"], {}), ([], {"DIGITFLOW_DEBUG": "1"}):
        result = run(project, sys.executable, "-m", "stages.split", *extra_args, check=False, **env)
        assert result.returncode == 1
        assert "Traceback" in result.stderr
        assert "FileNotFoundError" in result.stderr  # the library error behind the message
        assert len(error_lines(result.stderr, "split")) == 1


# --- 5. stores: read-only mlflow.db --------------------------------------------------------------------


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable even for root (immutable), or by mode for other users."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
            pytest.skip("running as root on a filesystem without chattr +i: cannot make a file read-only")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)


def test_read_only_store_names_the_file_and_the_fix(project: Path) -> None:
    before = snapshot(project, "models")
    with read_only(project / "mlflow.db"):
        result = run(project, sys.executable, "-m", "stages.train_sklearn", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr, "train_sklearn")
    assert "attempt to write a readonly database" in line
    assert f"{project / 'mlflow.db'} is read-only" in result.stderr
    assert "chmod u+w" in result.stderr
    assert snapshot(project, "models") == before


# --- 2. the tracking server --------------------------------------------------------------------------


def test_unreachable_tracking_server_fails_within_30_seconds(project: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    before = snapshot(project, "models")
    started = time.monotonic()
    result = run(project, sys.executable, "-m", "stages.train_sklearn", check=False, MLFLOW_TRACKING_URI=uri)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 30, elapsed
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr, "train_sklearn")
    assert uri in line
    assert "MLFLOW_TRACKING_URI" in result.stderr
    assert snapshot(project, "models") == before


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `mlflow server` on 127.0.0.1 with its store in ``folder``; stopped (its process group) after."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'server.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    server = subprocess.Popen(
        command,
        cwd=folder,
        env=pipeline_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not start in 120 s"
            time.sleep(0.5)
        yield uri, server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_tracking_server_killed_mid_run(project: Path, tmp_path: Path, monkeypatch) -> None:
    """The stage fails within 60 s with one message and no new output; the next run marks it FAILED."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # this test's own polling client
    set_params(
        project, train_torch={"digits": {"epochs": 3000}}
    )  # minutes of training: only the heartbeat can see the loss
    before = {folder: snapshot(project, folder) for folder in ("models", "metrics")}
    store = tmp_path / "server"
    store.mkdir()
    with mlflow_server(store) as (uri, server):
        trainer = subprocess.Popen(
            [sys.executable, "-m", "stages.train_torch"],
            cwd=project,
            env=pipeline_env(MLFLOW_TRACKING_URI=uri),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        client = mlflow.MlflowClient(tracking_uri=uri)
        deadline = time.monotonic() + 120
        running = []
        while not running and trainer.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                experiment = client.get_experiment_by_name("digitflow")
                running = experiment and client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
            time.sleep(0.2)
        assert running, f"no RUNNING run appeared; the trainer said:\n{trainer.stderr.read() if trainer.poll() else ''}"
        os.killpg(server.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        stderr = trainer.communicate(timeout=300)[1]
        elapsed = time.monotonic() - killed_at
    assert trainer.returncode == 1, stderr
    assert elapsed < 60, elapsed
    assert "Traceback" not in stderr
    (line,) = error_lines(stderr, "train_torch")
    assert uri in line
    assert {folder: snapshot(project, folder) for folder in before} == before
    assert temporaries(project) == []

    # The server could not be told; once it is back, the next pipeline run marks the run FAILED.
    run_id = running[0].info.run_id
    with mlflow_server(store) as (uri, _):
        mark = "from digitflow.tracking.runs import prepare_experiment; prepare_experiment('digitflow')"
        run(project, sys.executable, "-c", mark, MLFLOW_TRACKING_URI=uri)
        assert mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).info.status == "FAILED"

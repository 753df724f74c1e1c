"""Shared fixtures: a temporary copy of the project as a real git + DVC repository, and a real HTTP
mirror of MNIST on 127.0.0.1 serving ``../shared/data/mnist`` (the four original files)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitflow import testing
from digitflow.testing import serve_folder
from tests import extras

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = PROJECT_ROOT.parent / "shared" / "data" / "mnist"

# Nothing in the tests may wait on telemetry or reach the network.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("DIGITFLOW_MNIST_MIRRORS", None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked with an extra (``sweep``, ``team``, ``test_tools``) is skipped, with the reason, where
    that extra is not installed (a failure in CI): see tests/extras.py."""
    for marker in extras.EXTRAS:
        if item.get_closest_marker(marker):
            extras.require(marker)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, text=True).stdout


def make_project_copy(destination: Path) -> Path:
    """Copy the project into ``destination`` and make it a git repository with one commit."""
    return testing.make_project_copy(PROJECT_ROOT, destination)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A fresh, committed copy of the project in a temporary folder."""
    return make_project_copy(tmp_path / "project")


def pipeline_env(**extra: str) -> dict[str, str]:
    """Environment for running the project's commands: this interpreter's venv first on PATH."""
    # Nothing of another test's store leaks in: `mlflow.set_tracking_uri` in this process also sets
    # MLFLOW_TRACKING_URI in os.environ, which every later subprocess would inherit.
    leaks = ("DVC_", "PYTEST_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
             "MLFLOW_TRACKING_PASSWORD")  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith(leaks)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cwd: Path, *command: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd``; on failure show its output in the assertion message."""
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, env=pipeline_env(**env))
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    """The folder with the four original MNIST files; required in CI, skipped elsewhere if absent."""
    if not all((SHARED_MNIST / name).is_file() for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the MNIST files in {SHARED_MNIST}")
        pytest.skip(f"MNIST files not found in {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def mnist_mirror(shared_mnist: Path) -> Iterator[str]:
    """A real HTTP mirror of MNIST on 127.0.0.1, serving the shared files."""
    with serve_folder(shared_mnist) as url:
        yield url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_json(url: str, process: subprocess.Popen, timeout: float = 120) -> dict:
    """GET ``url`` until the server started as ``process`` answers with JSON (or dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(1)

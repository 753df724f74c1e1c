"""Shared fixtures: a temporary copy of the project as a real git + DVC repository, and a real HTTP
mirror of MNIST on 127.0.0.1 serving ``../shared/data/mnist`` (the four original files)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import extras
from tests.support import project as testing
from tests.support.project import serve_folder

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
    that extra is not installed (a failure in CI): see tests/support/extras.py."""
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
    """Environment for running the project's commands (see ``tests.support.project.command_env``)."""
    return testing.command_env(**extra)


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


E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e/ runs the real pipeline or real services: marked ``e2e``, so the edit
    loop's ``pytest -m "not e2e"`` leaves it out."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)

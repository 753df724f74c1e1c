"""Shared fixtures: a temporary copy of the project as a real git + DVC repository, and a real HTTP
mirror of MNIST on 127.0.0.1 serving ``../shared/data/mnist`` (the four original files)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import extras
from tests.support import project as testing
from tests.support.project import serve_folder
from tests.support.warm import server_processes

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = PROJECT_ROOT.parent / "shared" / "data" / "mnist"

# Nothing in the tests may wait on telemetry or reach the network.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("DIGITFLOW_MNIST_MIRRORS", None)
# The warm stage servers that the tests' pipelines start (digitflow/core/warm) live in this session's own
# folder, and stop with the session (stop_warm_servers): a test run leaves no process behind. Short, under
# /tmp: a Unix socket's path has at most 107 characters.
WARM_SERVER_DIR = Path(tempfile.mkdtemp(prefix="digitflow-test-servers-", dir="/tmp"))
os.environ["DIGITFLOW_SERVER_DIR"] = str(WARM_SERVER_DIR)


@pytest.fixture(scope="session", autouse=True)
def stop_warm_servers() -> Iterator[None]:
    yield
    from digitflow.core.warm.control import stop

    stop({"DIGITFLOW_SERVER_DIR": str(WARM_SERVER_DIR)})
    # A test that failed with a warm stage still running leaves its child (the server waits for it): end it.
    for pid in server_processes(WARM_SERVER_DIR):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(WARM_SERVER_DIR, ignore_errors=True)


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
def reproduced_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project after the README's `dvc repro` on the embedded digits, under umask 022 and one thread:
    built once per test session (once per xdist worker) and never changed; tests get a copy of it with
    ``copy_project``. Its output is in ``repro-output.txt`` beside it. The warm stage server for its
    environment is started first (the docs' `digitflow server start`), so every stage of it runs warm."""
    from tests.support.readme import readme_command

    project = make_project_copy(tmp_path_factory.mktemp("reproduced") / "project")
    run(project, "bash", "-c", readme_command("digitflow server start"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        ["bash", "-c", readme_command("dvc repro")],
        cwd=project,
        env=pipeline_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    (project.parent / "repro-output.txt").write_text(result.stdout + result.stderr)
    return project


def copy_project(source: Path, destination: Path) -> Path:
    """A copy of a reproduced project with everything in it (git, DVC cache, outputs, MLflow store), file
    modes kept. MLflow recorded its artifact folder as an absolute path, so the copy's new runs write
    their artifacts beside the source's, which lives as long as the test session."""
    return Path(shutil.copytree(source, destination, symlinks=True))


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


if importlib.util.find_spec("xdist") is not None:  # the hook exists only with pytest-xdist (the test extra)

    def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
        """With `-n N`, a test file's tests stay on one worker: a module's reproduced project (its
        module-scoped fixture) is built once, not once per worker."""
        from xdist.scheduler import LoadFileScheduling

        return LoadFileScheduling(config, log)

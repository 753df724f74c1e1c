"""A real, empty MLflow store per test, in its own folder, made in milliseconds.

Creating an MLflow SQLite store runs every schema migration (5-10 s on the 2-core CI machine), so the
migrated, still empty database is made once and kept in pytest's cache, one file per MLflow version
(under a file lock, so ``pytest -n 2`` workers make it once); each test gets a copy of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from filelock import FileLock

from digitflow.tracking.client_settings import HTTP_DEFAULTS
from digitflow.tracking.store import STORE_FILE, prepare_experiment

EXPERIMENT = "unit-tests"


@pytest.fixture(scope="session")
def empty_store_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated MLflow SQLite database with no runs (the ``Default`` experiment only)."""
    cache = getattr(request.config, "cache", None)  # absent under `-p no:cacheprovider`
    folder = cache.mkdir("mlflow-empty-store") if cache is not None else tmp_path_factory.mktemp("mlflow-store")
    template = folder / f"mlflow-{mlflow.__version__}.db"
    with FileLock(str(template) + ".lock"):
        if not template.exists():
            building = folder / f"building-{template.name}"
            building.unlink(missing_ok=True)
            mlflow.MlflowClient(f"sqlite:///{building}").search_experiments()  # creates and migrates
            building.replace(template)
    return template


@dataclass(frozen=True)
class Store:
    """A repository's embedded store, as the stages see it: ``<root>/mlflow.db`` and ``<root>/mlartifacts``."""

    root: Path
    uri: str
    client: Any  # mlflow.MlflowClient
    experiment_id: str

    def new_run(self, **tags: str) -> Any:
        return self.client.create_run(self.experiment_id, tags=tags)


@pytest.fixture
def store(empty_store_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A copy of the empty store as ``tmp_path/mlflow.db``, the working directory and the default store
    of this process (what ``tracking_uri()`` finds in a repository), with experiment ``unit-tests``.

    MLflow's global tracking URI and ``MLFLOW_TRACKING_URI`` (which ``mlflow.set_tracking_uri`` writes
    into the environment, for later tests' subprocesses to inherit) are put back afterwards."""
    shutil.copyfile(empty_store_file, tmp_path / STORE_FILE)
    monkeypatch.chdir(tmp_path)
    for variable in ("DVC_ROOT", "DVC_EXP_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in HTTP_DEFAULTS.items():  # prepare_experiment sets them in os.environ
        monkeypatch.setenv(variable, os.environ.get(variable) or value)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    uri = f"sqlite:///{tmp_path / STORE_FILE}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    experiment_id = prepare_experiment(EXPERIMENT, uri)
    yield Store(tmp_path, uri, mlflow.MlflowClient(uri), experiment_id)
    while mlflow.active_run() is not None:
        mlflow.end_run()

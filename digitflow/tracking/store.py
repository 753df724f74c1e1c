"""The MLflow store of a repository: where it is, and creating it (and the experiment) once.

The embedded default is ``sqlite:///<repository>/mlflow.db`` with artifacts in ``<repository>/mlartifacts``.
"The repository" is ``$DVC_ROOT`` when DVC runs the stage (DVC sets it to the original repository even
when a queued or ``--temp`` experiment runs in a temporary copy, which is deleted afterwards), else the
working directory. ``MLFLOW_TRACKING_URI`` overrides the store.

MLflow creates its SQLite tables, and experiments, with a race: several processes doing it at once can
break the store or file runs under ``Default``. So the store and the experiment are created under a
file lock, once, before a run starts.

A new SQLite store takes MLflow five seconds and more: it creates the tables of its first schema and
then runs every migration since, one by one. The first stage to create one for an MLflow version keeps
the migrated, empty result in the user's cache (``~/.cache/digitflow``, or ``$XDG_CACHE_HOME``), without
its ``Default`` experiment; every new store after that starts as a copy of it, and MLflow adds the
``Default`` experiment (with this store's artifact location and time) when it opens the copy.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digitflow.core.processes import process_alive
from digitflow.core.shell import debug_requested
from digitflow.tracking.client_settings import apply_http_defaults, quiet_store_logs
from digitflow.tracking.faults import store_errors
from digitflow.tracking.links import COMPARISON, save_view

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_FILE = ".mlflow.lock"
TAG_PREFIX = "digitflow."
# What the experiment is, for the MLflow clients and UIs that read it. MLflow 3.17's UI does not choose its
# page by it: that is each browser's choice, which the `tracking.links` addresses set to Model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def repository_root(environ: Mapping[str, str] | None = None) -> Path:
    """The repository whose store runs belong in: ``$DVC_ROOT`` under DVC, else the working directory."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root(environ) / STORE_FILE}"


def _is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def prepare_experiment(name: str, uri: str | None = None) -> str:
    """Create the store and the experiment once, under a file lock; return the experiment id.

    Also saves the UI view that compares the models (``links.COMPARISON``, in everyone's "Views"
    list), and marks runs of this machine whose process died without ending them (a killed stage) as
    failed, so no run stays ``RUNNING`` forever.
    """
    import mlflow
    from filelock import FileLock

    apply_http_defaults()
    quiet_store_logs(debug_requested())
    uri = uri or tracking_uri()
    root = repository_root()
    lock_path = root / LOCK_FILE if _is_local_sqlite(uri) else Path.cwd() / LOCK_FILE
    with store_errors(uri, "opening the store", name), FileLock(str(lock_path), timeout=300):
        if _is_local_sqlite(uri):
            _new_store_from_template(Path(uri.removeprefix("sqlite:///")))
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            artifacts = (root / ARTIFACTS_DIR).as_uri() if _is_local_sqlite(uri) else None
            experiment_id = client.create_experiment(name, artifact_location=artifacts, tags=EXPERIMENT_KIND)
            tags: dict[str, str] = {}
        else:
            experiment_id, tags = experiment.experiment_id, experiment.tags
            for key, value in EXPERIMENT_KIND.items():
                if tags.get(key) != value:
                    client.set_experiment_tag(experiment_id, key, value)
        save_view(client, experiment_id, COMPARISON, tags)
        _fail_orphaned_runs(client, experiment_id)
    return experiment_id


def _fail_orphaned_runs(client: Any, experiment_id: str) -> None:
    host = socket.gethostname()
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in running:
        tags = run.data.tags
        pid = tags.get(TAG_PREFIX + "pid")
        if tags.get(TAG_PREFIX + "host") == host and pid and not process_alive(int(pid)):
            log.warning("marking MLflow run %s failed: its process %s is gone", run.info.run_id, pid)
            client.set_terminated(run.info.run_id, status="FAILED")


def store_template(cache: Path | None = None) -> Path | None:
    """The cached empty store of the installed MLflow (made now if missing), or None if it cannot be."""
    import mlflow
    import sqlalchemy

    cache = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digitflow"
    template = cache / f"mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}.db"
    if template.is_file():
        return template
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{template.name}.{os.getpid()}.tmp"
        partial.unlink(missing_ok=True)
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{partial}", cache.as_uri())  # every table, fully migrated
        store.engine.dispose()
        with sqlite3.connect(partial) as db:
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")  # MLflow adds it back, with the copy's
        os.replace(partial, template)
    except Exception as exc:  # a read-only home, a full disk: MLflow creates the store itself
        log.debug("no MLflow store template in %s: %s", cache, exc)
        return None
    return template


def _new_store_from_template(path: Path) -> None:
    if path.exists():
        return
    template = store_template()
    if template is None:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, partial)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # MLflow creates the store itself, and reports what is wrong

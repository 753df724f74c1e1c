"""MLflow tracking: one store per repository, created once, every run tagged so it can be found.

The embedded default is ``sqlite:///<repository>/mlflow.db`` with artifacts in ``<repository>/mlartifacts``.
"The repository" is ``$DVC_ROOT`` when DVC runs the stage (DVC sets it to the original repository even
when a queued or ``--temp`` experiment runs in a temporary copy, which is deleted afterwards), else the
working directory. ``MLFLOW_TRACKING_URI`` overrides the store.

MLflow creates its SQLite tables, and experiments, with a race: several processes doing it at once can
break the store or file runs under ``Default``. So the store and the experiment are created under a
file lock, once, before a run starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from digitflow import paths
from digitflow.errors import TrackingStoreError
from digitflow.io import read_json, write_json

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_FILE = ".mlflow.lock"
TAG_PREFIX = "digitflow."


def repository_root(environ: Mapping[str, str] | None = None) -> Path:
    """The repository whose store runs belong in: ``$DVC_ROOT`` under DVC, else the working directory."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root(environ) / STORE_FILE}"


def _is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


@dataclass(frozen=True)
class RunInfo:
    """Which MLflow run produced a model; stored beside the model so it travels with it."""

    run_id: str
    experiment_id: str
    tracking_uri: str

    def save(self, path: Path) -> None:
        write_json(
            path, {"run_id": self.run_id, "experiment_id": self.experiment_id, "tracking_uri": self.tracking_uri}
        )

    @classmethod
    def load(cls, path: Path) -> RunInfo:
        return cls(**read_json(path))


def _repair_hint(uri: str) -> str:
    if _is_local_sqlite(uri):
        db = uri.removeprefix("sqlite:///")
        return (
            f"Repair it with `mlflow db upgrade {uri}`; if that fails, move {db} aside "
            "(runs in it are kept there) and run the pipeline again to start a new store."
        )
    return f"Check the server at {uri} (MLFLOW_TRACKING_URI)."


def prepare_experiment(name: str, uri: str | None = None) -> str:
    """Create the store and the experiment once, under a file lock; return the experiment id.

    Also marks runs of this machine whose process died without ending them (a killed stage) as
    failed, so no run stays ``RUNNING`` forever.
    """
    import mlflow
    from filelock import FileLock
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    root = repository_root()
    lock_path = root / LOCK_FILE if _is_local_sqlite(uri) else Path.cwd() / LOCK_FILE
    try:
        with FileLock(str(lock_path), timeout=300):
            client = mlflow.MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                artifacts = (root / ARTIFACTS_DIR).as_uri() if _is_local_sqlite(uri) else None
                experiment_id = client.create_experiment(name, artifact_location=artifacts)
            else:
                experiment_id = experiment.experiment_id
            _fail_orphaned_runs(client, experiment_id)
    except MlflowException as exc:
        raise TrackingStoreError(f"the MLflow store at {uri} cannot be used: {exc}\n{_repair_hint(uri)}") from None
    except Exception as exc:  # SQLAlchemy / alembic errors surface under many types
        if type(exc).__module__.split(".")[0] in {"sqlalchemy", "alembic", "sqlite3"}:
            raise TrackingStoreError(f"the MLflow store at {uri} is broken: {exc}\n{_repair_hint(uri)}") from None
        raise
    return experiment_id


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_orphaned_runs(client: Any, experiment_id: str) -> None:
    host = socket.gethostname()
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in running:
        tags = run.data.tags
        pid = tags.get(TAG_PREFIX + "pid")
        if tags.get(TAG_PREFIX + "host") == host and pid and not _process_alive(int(pid)):
            log.warning("marking MLflow run %s failed: its process %s is gone", run.info.run_id, pid)
            client.set_terminated(run.info.run_id, status="FAILED")


def git_commit(cwd: Path | None = None) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def input_hashes(stage: str, dvc_yaml: Path = Path("dvc.yaml"), lock: Path = paths.DVC_LOCK_FILE) -> dict[str, str]:
    """``dvc.lock`` hashes of the data a stage reads, as recorded when the upstream stages ran."""
    if not dvc_yaml.exists() or not lock.exists():
        return {}
    deps = yaml.safe_load(dvc_yaml.read_text())["stages"].get(stage, {}).get("deps", [])
    recorded: dict[str, str] = {}
    for entry in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
        for out in entry.get("outs", []):
            recorded[out["path"]] = out.get("md5", "")
    return {dep: recorded[dep] for dep in deps if dep in recorded}


def run_tags(stage: str, dataset: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags that let a run be found from git, DVC and the process that made it."""
    environ = os.environ if environ is None else environ
    commit = git_commit()
    tags = {
        TAG_PREFIX + "stage": stage,
        TAG_PREFIX + "dataset": dataset,
        TAG_PREFIX + "git_commit": commit,
        TAG_PREFIX + "host": socket.gethostname(),
        TAG_PREFIX + "pid": str(os.getpid()),
        "mlflow.source.git.commit": commit,
    }
    if environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = environ["DVC_EXP_NAME"]
    if environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.exp_baseline_rev"] = environ["DVC_EXP_BASELINE_REV"]
    # Set by `python -m stages.sweep` for each trial, so `mlflow ui` filters a study's runs.
    if environ.get("DIGITFLOW_SWEEP_STUDY"):
        tags[TAG_PREFIX + "sweep.study"] = environ["DIGITFLOW_SWEEP_STUDY"]
        tags[TAG_PREFIX + "sweep.trial"] = environ.get("DIGITFLOW_SWEEP_TRIAL", "")
    for path, md5 in input_hashes(stage).items():
        tags[f"dvc.input.{path}"] = md5
    return tags


@contextlib.contextmanager
def training_run(experiment: str, stage: str, dataset: str, run_name: str) -> Iterator[Any]:
    """Start a run in the repository's store; it ends FAILED if the block raises or is interrupted."""
    import mlflow

    uri = tracking_uri()
    experiment_id = prepare_experiment(experiment, uri)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags(stage, dataset)) as run:
        yield run


@contextlib.contextmanager
def resumed_run(info: RunInfo, experiment: str, stage: str) -> Iterator[Any]:
    """Reopen the run that trained a model, so its test results land beside its training results.

    If that run is not in the current store (the model was restored from a DVC cache filled elsewhere,
    or ``MLFLOW_TRACKING_URI`` changed), a new run records the results and names the missing one.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking_uri()
    experiment_id = prepare_experiment(experiment, uri)
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.MlflowClient(uri).get_run(info.run_id)
        found = True
    except MlflowException:
        found = False
    if found:
        with mlflow.start_run(run_id=info.run_id) as run:
            mlflow.set_tag(TAG_PREFIX + "evaluated_by", stage)
            yield run
        return
    log.warning("MLflow run %s is not in %s; logging %s results to a new run", info.run_id, uri, stage)
    tags = {TAG_PREFIX + "stage": stage, TAG_PREFIX + "missing_training_run": info.run_id}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{stage}-orphan", tags=tags) as run:
        yield run


def flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"lr": 0.1}`` -> ``{"prefix.lr": 0.1}``, the form ``mlflow.log_params`` takes."""
    return {f"{prefix}.{key}": value for key, value in values.items()}


def log_step_metrics(run_id: str, history: list[dict[str, float]], step_key: str = "epoch") -> None:
    """Log per-epoch metrics in one batch call rather than one call per value."""
    import time

    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(key=key, value=float(value), timestamp=now, step=int(row[step_key]))
        for row in history
        for key, value in row.items()
        if key != step_key
    ]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), 1000):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=metrics[start : start + 1000])

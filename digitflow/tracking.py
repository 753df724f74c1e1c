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
from digitflow.cli import debug_requested
from digitflow.mlflow_links import COMPARISON, save_view
from digitflow.tracking_faults import Heartbeat, apply_http_defaults, end_run_quietly, quiet_store_logs, store_errors

log = logging.getLogger(__name__)

STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
LOCK_FILE = ".mlflow.lock"
TAG_PREFIX = "digitflow."
# What the experiment is, for the MLflow clients and UIs that read it. MLflow 3.17's UI does not choose its
# page by it: that is each browser's choice, which the `digitflow.mlflow_links` addresses set to Model training.
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


@dataclass(frozen=True)
class RunInfo:
    """Which MLflow run, and which registered model version, produced a model (see ``records``)."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    registered_model: str | None = None
    model_version: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The fields under the names the training record uses (``mlflow_run_id`` first)."""
        return {
            "mlflow_run_id": self.run_id,
            "mlflow_experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "registered_model": self.registered_model,
            "model_version": self.model_version,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RunInfo:
        return cls(
            run_id=record["mlflow_run_id"],
            experiment_id=record["mlflow_experiment_id"],
            tracking_uri=record["tracking_uri"],
            registered_model=record.get("registered_model"),
            model_version=record.get("model_version"),
        )


def prepare_experiment(name: str, uri: str | None = None) -> str:
    """Create the store and the experiment once, under a file lock; return the experiment id.

    Also saves the UI view that compares the models (``mlflow_links.COMPARISON``, in everyone's "Views"
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


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (another user's counts as alive)."""
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
        if tags.get(TAG_PREFIX + "host") == host and pid and not process_alive(int(pid)):
            log.warning("marking MLflow run %s failed: its process %s is gone", run.info.run_id, pid)
            client.set_terminated(run.info.run_id, status="FAILED")


def git_commit(cwd: Path | None = None) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def git_dirty(cwd: Path | None = None) -> str:
    """``true`` when tracked code or params differ from the commit, so the commit alone does not say
    what ran. The pipeline's own committed outputs (``dvc.lock``, metrics, reports) do not count: a run
    rewrites them."""
    outputs = [f":(exclude){path.as_posix()}" for path in (paths.DVC_LOCK_FILE, paths.METRICS_DIR, paths.REPORTS_DIR)]
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return "unknown"
    return "true" if result.stdout.strip() else "false"


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
        TAG_PREFIX + "git_dirty": git_dirty(),
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


def unique_run_name(client: Any, experiment_id: str, base: str) -> str:
    """``base`` if no run has it yet, else ``base-2``, ``base-3``, ... so chart legends tell runs apart."""
    taken = {
        run.info.run_name
        for run in client.search_runs([experiment_id], filter_string=f"attributes.run_name LIKE '{base}%'")
    }
    if base not in taken:
        return base
    return next(f"{base}-{n}" for n in range(2, len(taken) + 3) if f"{base}-{n}" not in taken)


def run_name_base(model_name: str, dataset: str, environ: Mapping[str, str] | None = None) -> str:
    """``torch-digits-<experiment>`` under a DVC experiment, else ``torch-digits-<short commit>``."""
    environ = os.environ if environ is None else environ
    return f"{model_name}-{dataset}-{environ.get('DVC_EXP_NAME') or git_commit()[:7]}"


@contextlib.contextmanager
def _active_run(uri: str, stage: str, experiment: str | None = None, **start: Any) -> Iterator[Any]:
    """``mlflow.start_run`` whose store failures, at the start, inside the block or at the end, become one
    ``TrackingStoreError``; the run ends FAILED if the block raises or is interrupted, when the store can
    still be reached (otherwise the next pipeline run marks it FAILED, see ``prepare_experiment``)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    with store_errors(uri, f"starting the {stage} run", experiment):
        run = mlflow.start_run(**start)
    heartbeat = Heartbeat(uri, run.info.run_id)
    try:
        doing = f"logging the {stage} run {run.info.run_id}; no output was written"
        with heartbeat, store_errors(uri, doing, experiment):
            yield run
    except KeyboardInterrupt:
        end_run_quietly("FAILED")
        if (lost := heartbeat.lost(uri, stage)) is not None:
            raise lost from heartbeat.error
        raise
    except BaseException:
        end_run_quietly("FAILED")
        raise
    with store_errors(uri, f"ending the {stage} run {run.info.run_id}"):
        mlflow.end_run()


@contextlib.contextmanager
def training_run(
    experiment: str, stage: str, dataset: str, run_name: str, extra_tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """Start a run in the repository's store; it ends FAILED if the block raises or is interrupted,
    and a watchdog ends it FAILED if the process is killed outright."""
    import mlflow

    from digitflow import run_watchdog

    uri = tracking_uri()
    experiment_id = prepare_experiment(experiment, uri)
    with store_errors(uri, "naming the run"):
        name = unique_run_name(mlflow.MlflowClient(uri), experiment_id, run_name)
    tags = {**run_tags(stage, dataset), **(extra_tags or {})}
    watchdog = None
    try:
        with _active_run(uri, stage, experiment, experiment_id=experiment_id, run_name=name, tags=tags) as run:
            watchdog = run_watchdog.spawn(run.info.run_id, uri)
            yield run
    finally:
        if watchdog is not None:
            run_watchdog.release(watchdog)


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

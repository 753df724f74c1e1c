"""MLflow runs: one per trained model, tagged so it can be found from git, DVC and the process that made
it, named so chart legends tell runs apart, and never left RUNNING."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.dvc_files import recorded_hashes, stage_deps
from digitflow.core.git import commit_id, is_dirty
from digitflow.tracking.faults import end_run_quietly, store_errors
from digitflow.tracking.heartbeat import Heartbeat
from digitflow.tracking.store import TAG_PREFIX, prepare_experiment, tracking_uri

log = logging.getLogger(__name__)


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


def input_hashes(stage: str, dvc_yaml: Path = paths.DVC_FILE, lock: Path = paths.DVC_LOCK_FILE) -> dict[str, str]:
    """``dvc.lock`` hashes of the data a stage reads, as recorded when the upstream stages ran."""
    recorded = recorded_hashes(lock)
    return {dep: recorded[dep] for dep in stage_deps(stage, dvc_yaml) if dep in recorded}


def git_commit(cwd: Path | None = None) -> str:
    return commit_id(cwd=cwd) or "unknown"


def git_dirty() -> str:
    """``true`` when tracked code or params differ from the commit, so the commit alone does not say
    what ran. The pipeline's own committed outputs (``dvc.lock``, metrics, reports) do not count: a run
    rewrites them."""
    dirty = is_dirty(exclude=(paths.DVC_LOCK_FILE, paths.METRICS_DIR, paths.REPORTS_DIR))
    return "unknown" if dirty is None else str(dirty).lower()


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
    # Set by `digitflow sweep` for each trial, so `mlflow ui` filters a study's runs.
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
    ``TrackingStoreError``; the run ends FAILED if the block raises or is interrupted. A watchdog process
    ends it FAILED if this process is killed outright, or exits without having ended it (the store did not
    answer then; otherwise the next pipeline run marks it FAILED, see ``prepare_experiment``)."""
    import mlflow

    from digitflow.tracking import watchdog

    mlflow.set_tracking_uri(uri)
    with store_errors(uri, f"starting the {stage} run", experiment):
        run = mlflow.start_run(**start)
    heartbeat = Heartbeat(uri, run.info.run_id)
    guard, ended = None, False
    try:
        guard = watchdog.spawn(run.info.run_id, uri)
        doing = f"logging the {stage} run {run.info.run_id}; no output was written"
        with heartbeat, store_errors(uri, doing, experiment):
            yield run
    except KeyboardInterrupt as interrupt:
        ended = end_run_quietly("FAILED", interrupt)
        if (lost := heartbeat.lost(uri, stage)) is not None:
            raise lost from heartbeat.error
        raise
    except BaseException as failure:
        ended = end_run_quietly("FAILED", failure)
        raise
    else:
        with store_errors(uri, f"ending the {stage} run {run.info.run_id}"):
            mlflow.end_run()
        ended = True
    finally:
        if guard is not None and ended:
            watchdog.release(guard)


@contextlib.contextmanager
def training_run(
    experiment: str, stage: str, dataset: str, run_name: str, extra_tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """Start a run in the repository's store; it ends FAILED if the block raises or is interrupted,
    and a watchdog ends it FAILED if the process is killed outright."""
    import mlflow

    uri = tracking_uri()
    experiment_id = prepare_experiment(experiment, uri)
    with store_errors(uri, "naming the run"):
        name = unique_run_name(mlflow.MlflowClient(uri), experiment_id, run_name)
    tags = {**run_tags(stage, dataset), **(extra_tags or {})}
    with _active_run(uri, stage, experiment, experiment_id=experiment_id, run_name=name, tags=tags) as run:
        yield run


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

"""Sweeps shared through a database: any number of worker processes, on any number of machines, pull the
next trial of one Optuna study, and each trial is a real DVC experiment named ``<study>-<trial number>``.

Why this shape: ``dvc queue`` runs workers on one machine only, while Optuna's RDB storage (SQLite on one
machine, PostgreSQL across machines) lets every worker that opens the same study share it. Each trial is
what ``dvc --wait-for-lock exp run --temp`` runs (an isolated copy of the workspace, so several run at once
on one repository, each running only its own experiment: ``dvc_trial``; fetch / preprocess / split come
from DVC's run-cache), and the worker reads the validation metric from the experiment's own commit.
The stages tag their MLflow runs with the study and trial from the environment.

A worker killed mid-trial stops sending heartbeats; after the grace period the next worker to look marks
its trial FAILED and re-queues a copy (``RetryFailedTrialCallback``), so no trial stays RUNNING.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.git import git
from digitflow.sweep.dvc_trial import dvc_processes, run_experiment
from digitflow.sweep.experiments import clear_abandoned, read_experiment, read_experiment_output
from digitflow.sweep.space import Choices, Metric, Scalar, SweepConfig, SweepConfigError
from digitflow.sweep.study import Settings, state_counts
from digitflow.tracking.records import run_info

log = logging.getLogger(__name__)

STUDY_ENV = "DIGITFLOW_SWEEP_STUDY"
TRIAL_ENV = "DIGITFLOW_SWEEP_TRIAL"


class TrialFailedError(Exception):
    """One trial's pipeline failed; the trial ends FAILED and the worker goes on with the next."""


def suggest(trial: Any, config: SweepConfig) -> dict[str, Scalar]:
    values: dict[str, Scalar] = {}
    for key, spec in config.space.items():
        if isinstance(spec, Choices):
            values[key] = trial.suggest_categorical(key, spec.choices)
        elif spec.is_int:
            values[key] = trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        else:
            values[key] = trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)
    return values


def trial_name(study: str, number: int) -> str:
    return f"{study}-{number}"


def assignment(key: str, value: Scalar) -> str:
    return f"{key}={'null' if value is None else json.dumps(value) if isinstance(value, str) else value}"


def _surplus(trial: Any, total: int) -> bool:
    """True when earlier live trials already make up the study's total (two workers asked at once)."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    earlier = trial.study.get_trials(deepcopy=False, states=live)
    return sum(t.number < trial.number for t in earlier) >= total


def training_run_id(root: Path, baseline: str, experiment: str, model: str) -> str | None:
    """The MLflow run that trained ``model`` in DVC experiment ``experiment``, from the experiment's own
    training record (a DVC-cached output, like the model), or None with a warning where it cannot be read.

    Why from the record and not by asking MLflow: the worker then needs neither MLflow (a second and more to
    import) nor the store, which every worker's stages are writing to (an SQLite store answers "database is
    locked" while one of them holds it). Why it never raises: the trial's metric is already read, and the
    run id is only a link from the trial to MLflow; an exception here would end the worker.
    """
    from dvc.exceptions import DvcException

    record_file = paths.training_record_file(model)
    try:
        record = read_experiment_output(root, baseline, experiment, record_file)
        return run_info(record, model).run_id
    except (DvcException, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "warning: experiment %s keeps its result, but its MLflow run could not be read from %s (%s: %s); "
            "find it in MLflow by the tag dvc.exp_name = %s",
            experiment,
            record_file,
            type(exc).__name__,
            exc,
            experiment,
        )
        return None


def run_trial(trial: Any, config: SweepConfig, metric: Metric, root: Path) -> float:
    """Run one trial as ``dvc exp run --temp`` and return its validation metric."""
    import optuna

    if _surplus(trial, config.trials):
        raise optuna.TrialPruned(f"the study already has its {config.trials} trials")
    values = suggest(trial, config)
    name = trial_name(config.study, trial.number)
    baseline = git("rev-parse", "HEAD", cwd=root).strip()
    assignments = [assignment(key, value) for key, value in {**config.fixed, **values}.items()]
    env = {STUDY_ENV: config.study, TRIAL_ENV: str(trial.number)}
    trial.set_user_attr("dvc_experiment", name)
    trial.set_user_attr("baseline_rev", baseline)
    log.info("trial %d: dvc exp run --temp -n %s %s", trial.number, name, " ".join(f"-S {a}" for a in assignments))
    code = run_experiment(root, name, assignments, env)
    if code != 0:
        raise TrialFailedError(f"trial {trial.number}: `dvc exp run` exited {code}; its output is above")
    train = read_experiment(root, baseline, name, paths.train_metrics_file(metric.model))
    tested = read_experiment(root, baseline, name, paths.EVALUATE_METRICS_FILE)[metric.model]
    trial.set_user_attr(metric.test_key, tested.get(metric.test_key))
    trial.set_user_attr("mlflow_run_id", training_run_id(root, baseline, name, metric.model))
    return float(train[metric.val_key])


def work(study: Any, config: SweepConfig, metric: Metric, settings: Settings, root: Path) -> None:
    """Take trials until the study has ``config.trials`` complete ones.

    One trial per ``optimize`` call, so the count is checked before each trial (never overshooting on
    purpose) and a worker with nothing to start waits while others run, taking over the re-queued copy
    of any trial whose worker died.
    """
    import dvc.api  # noqa: F401  (read_experiment_output's: imported once, before the first trial)
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState

    dvc_processes()  # the fork server imports DVC now, before the first trial
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        clear_abandoned(root, {t.user_attrs["dvc_experiment"] for t in failed if "dvc_experiment" in t.user_attrs})
        counts = state_counts(study)
        if counts.get("COMPLETE", 0) >= config.trials:
            return
        if counts.get("FAIL", 0) >= max(config.trials, 3):
            raise SweepConfigError(
                f"{counts['FAIL']} trials of study {config.study!r} failed; see their `dvc exp run` output and "
                "fix the cause (params, space) before running more"
            )
        if not counts.get("WAITING") and counts.get("COMPLETE", 0) + counts.get("RUNNING", 0) >= config.trials:
            time.sleep(settings.poll_s)  # the last trials are running elsewhere; stand by in case one dies
            continue
        study.optimize(lambda t: run_trial(t, config, metric, root), n_trials=1, catch=(TrialFailedError,))

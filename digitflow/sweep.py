"""Sweeps shared through a database: any number of worker processes, on any number of machines, pull the
next trial of one Optuna study, and each trial is a real DVC experiment named ``<study>-<trial number>``.

Why this shape: ``dvc queue`` runs workers on one machine only, while Optuna's RDB storage (SQLite on one
machine, PostgreSQL across machines) lets every worker that opens the same study share it. Each trial runs
``dvc --wait-for-lock exp run --temp`` (an isolated copy of the workspace, so several run at once on one repository;
fetch / preprocess / split come from DVC's run-cache) and reads the validation metric from the
experiment's own commit. The stages tag their MLflow runs with the study and trial from the environment.

A worker killed mid-trial stops sending heartbeats; after the grace period the next worker to look marks
its trial FAILED and re-queues a copy (``RetryFailedTrialCallback``), so no trial stays RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitflow import paths
from digitflow.sweep_dvc import clear_abandoned, git, read_experiment, run_experiment
from digitflow.sweep_space import Choices, Metric, Scalar, SweepConfig, SweepConfigError

log = logging.getLogger(__name__)

STORE_FILE = "optuna.db"
LOCK_FILE = ".optuna.lock"
STUDY_ENV = "DIGITFLOW_SWEEP_STUDY"
TRIAL_ENV = "DIGITFLOW_SWEEP_TRIAL"
RUNNING_STATES = ("RUNNING", "WAITING")


class TrialFailedError(Exception):
    """One trial's pipeline failed; the trial ends FAILED and the worker goes on with the next."""


def default_storage(root: Path) -> str:
    return f"sqlite:///{(root / STORE_FILE).resolve()}"


def redacted(url: str) -> str:
    """The storage URL with its password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: nothing to hide
        return url


@dataclass(frozen=True)
class Settings:
    """How a worker talks to the study: where it is, how often it proves it is alive, how often to retry."""

    storage: str
    heartbeat_s: int = 30
    grace_s: int = 120
    max_retry: int = 2
    poll_s: float = 5.0


def _storage(settings: Settings) -> Any:
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if not settings.storage.startswith(("sqlite:", "postgresql", "mysql")):
        raise SweepConfigError(
            f"storage {redacted(settings.storage)!r} is not a database URL Optuna can share between workers; use "
            "sqlite:///path/optuna.db (one machine) or postgresql+psycopg2://user:password@host/db"
        )
    engine_kwargs = {"connect_args": {"timeout": 60}} if settings.storage.startswith("sqlite:") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: "experimental" since Optuna 2.9
        return RDBStorage(
            settings.storage,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_s,
            grace_period=settings.grace_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry),
        )


def _create_study(config: SweepConfig, metric: Metric, settings: Settings) -> Any:
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    attempts = 5
    for attempt in range(attempts):
        try:
            storage = _storage(settings)
            return optuna.create_study(
                storage=storage, study_name=config.study, direction=metric.direction, load_if_exists=True
            )
        except (IntegrityError, ProgrammingError):
            # Workers starting together on an empty database race to create Optuna's tables: the losers
            # see "already exists"; a moment later the tables are there.
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def open_study(config: SweepConfig, metric: Metric, settings: Settings, root: Path) -> Any:
    """Create the study or join it; the first creation of an SQLite file is serialised by a file lock."""
    from filelock import FileLock

    lock = FileLock(str(root / LOCK_FILE), timeout=300) if settings.storage.startswith("sqlite:") else None
    try:
        with lock or contextlib.nullcontext():
            study = _create_study(config, metric, settings)
    except SweepConfigError:
        raise
    except Exception as exc:  # SQLAlchemy / driver errors: an unreachable server, wrong password, ...
        message = str(exc).replace(settings.storage, redacted(settings.storage))
        raise SweepConfigError(
            f"cannot open study {config.study!r} at {redacted(settings.storage)}: {message}"
        ) from None
    if study.direction.name.lower() != metric.direction:
        raise SweepConfigError(
            f"study {config.study!r} in {redacted(settings.storage)} already {study.direction.name.lower()}s; "
            f"{metric} is to be {metric.direction}d: use another study name"
        )
    known = study.user_attrs.get("metric")
    if known not in (None, str(metric)):
        raise SweepConfigError(f"study {config.study!r} optimises {known}, not {metric}: use another study name")
    if known is None:
        study.set_user_attr("metric", str(metric))
    return study


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


def _assignment(key: str, value: Scalar) -> str:
    return f"{key}={'null' if value is None else json.dumps(value) if isinstance(value, str) else value}"


def _surplus(trial: Any, total: int) -> bool:
    """True when earlier live trials already make up the study's total (two workers asked at once)."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    earlier = trial.study.get_trials(deepcopy=False, states=live)
    return sum(t.number < trial.number for t in earlier) >= total


def run_trial(trial: Any, config: SweepConfig, metric: Metric, root: Path) -> float:
    """Run one trial as ``dvc exp run --temp`` and return its validation metric."""
    import optuna

    if _surplus(trial, config.trials):
        raise optuna.TrialPruned(f"the study already has its {config.trials} trials")
    values = suggest(trial, config)
    name = trial_name(config.study, trial.number)
    baseline = git(root, "rev-parse", "HEAD").strip()
    settings = [arg for key, value in {**config.fixed, **values}.items() for arg in ("-S", _assignment(key, value))]
    env = {**os.environ, STUDY_ENV: config.study, TRIAL_ENV: str(trial.number)}
    trial.set_user_attr("dvc_experiment", name)
    trial.set_user_attr("baseline_rev", baseline)
    log.info("trial %d: dvc exp run --temp -n %s %s", trial.number, name, " ".join(settings))
    code = run_experiment(root, name, settings, env)
    if code != 0:
        raise TrialFailedError(f"trial {trial.number}: `dvc exp run` exited {code}; its output is above")
    train = read_experiment(root, baseline, name, paths.train_metrics_file(metric.model))
    tested = read_experiment(root, baseline, name, paths.EVALUATE_METRICS_FILE)[metric.model]
    trial.set_user_attr(metric.test_key, tested.get(metric.test_key))
    trial.set_user_attr("mlflow_run_id", train.get("mlflow_run_id"))
    return float(train[metric.val_key])


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def work(study: Any, config: SweepConfig, metric: Metric, settings: Settings, root: Path) -> None:
    """Take trials until the study has ``config.trials`` complete ones.

    One trial per ``optimize`` call, so the count is checked before each trial (never overshooting on
    purpose) and a worker with nothing to start waits while others run, taking over the re-queued copy
    of any trial whose worker died.
    """
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        clear_abandoned(root, {t.user_attrs["dvc_experiment"] for t in failed if "dvc_experiment" in t.user_attrs})
        counts = _counts(study)
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


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def mlflow_comparison(config: SweepConfig, metric: Metric) -> str:
    """Where to compare the study's trials in MLflow: ``digitflow ui --study NAME`` for the local store, the
    address of the study's view on a server (``digitflow.ui.study_runs_link`` saves the view: the optimised
    model's runs, ranked by the objective, with that model's searched params)."""
    from digitflow.errors import DigitflowError
    from digitflow.ui import study_runs_link

    # The optimised model's params.yaml keys -> its run's params: train_torch.digits.batch_size -> batch_size
    prefix = f"train_{metric.model}."
    params = tuple(dict.fromkeys(key.rsplit(".", 1)[-1] for key in config.space if key.startswith(prefix)))
    try:
        return study_runs_link(config.study, metric.model, metric.val_key, metric.direction == "minimize", params)
    except DigitflowError as exc:
        return f"(not available: {exc})"


def summary(study: Any, config: SweepConfig, metric: Metric, storage_option: str = "", compare: str = "") -> str:
    """The best trial, its params, its (reported, not optimised) test metric, where to compare the trials
    (``compare``, from ``mlflow_comparison``) and how to apply it."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(_counts(study).items()))
    lines = [f"study {study.study_name}: {counts}; optimising {metric} ({metric.direction})"]
    try:
        best = study.best_trial
    except ValueError:
        return "\n".join([*lines, "no trial has completed yet"])
    name = best.user_attrs.get("dvc_experiment", trial_name(study.study_name, best.number))
    assignments = " ".join(f"-S {_assignment(k, v)}" for k, v in {**config.fixed, **best.params}.items())
    lines += [
        f"best trial: {best.number} (DVC experiment {name}, MLflow run {best.user_attrs.get('mlflow_run_id')})",
        f"  {metric}: {best.value:.6f}",
        f"  {metric.model}.{metric.test_key}: {best.user_attrs.get(metric.test_key)} (reported, not used to choose)",
        *(f"  {key}: {value}" for key, value in best.params.items()),
        *([f"compare the trials' MLflow runs: {compare}"] if compare else []),
        "apply it:",
        f"  dvc exp apply {name}          # on the machine that ran it, or after `dvc exp pull <remote> {name}`",
        f"  python -m stages.sweep --study {study.study_name}{storage_option} --apply   # writes them to params.yaml",
        f"  (or by hand: dvc exp run {assignments})",
    ]
    return "\n".join(lines)


def apply_best(study: Any, config: SweepConfig, params_file: Path = paths.PARAMS_FILE) -> dict[str, Scalar]:
    """Write the best trial's params (and the sweep's fixed values) into params.yaml, keeping its comments."""
    from dvc.utils.serialize import modify_yaml

    from digitflow.params import load_params

    try:
        best = study.best_trial
    except ValueError:
        raise SweepConfigError(f"study {study.study_name!r} has no completed trial to apply") from None
    values = {**config.fixed, **best.params}
    before = params_file.read_text()
    with modify_yaml(params_file) as data:
        for key, value in values.items():
            *parents, field = key.split(".")  # train_torch.lr, or a per-dataset train_torch.digits.epochs
            target = data
            for part in parents:
                target = target.setdefault(part, {})
            target[field] = value
    try:
        load_params(params_file)
    except Exception:
        params_file.write_text(before)  # never leave an invalid params.yaml behind
        raise
    return values

"""The study a sweep's workers share: Optuna's RDB storage (SQLite on one machine, PostgreSQL across
machines), created once and joined by every worker, with heartbeats so a dead worker's trial is retried."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitflow.sweep.space import Metric, SweepConfig, SweepConfigError

STORE_FILE = "optuna.db"
LOCK_FILE = ".optuna.lock"


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


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def state_counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts

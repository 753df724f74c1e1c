"""A run interrupted anywhere ends FAILED, with a real store and a real watchdog: even when the interrupt
lands inside one of MLflow's own SQLite writes, and, if the store cannot end it, once its process exits."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import NoReturn

import mlflow
import pytest

from digitflow.core.processes import isolated_env
from digitflow.tracking import watchdog
from digitflow.tracking.runs import training_run
from tests.conftest import PROJECT_ROOT
from tests.unit.tracking.conftest import EXPERIMENT, Store
from tests.unit.tracking.test_watchdog import FAILURE_TAG, wait_until


def interrupted_inside_a_write() -> NoReturn:
    """What Ctrl-C or SIGTERM in the middle of one of MLflow's writes leaves behind: a connection of the
    store's own pool inside a write transaction, holding SQLite's write lock, referenced only from the
    interrupted frame."""
    store = mlflow.tracking._tracking_service.utils._get_store()
    connection = store.engine.raw_connection()
    connection.cursor().execute("BEGIN IMMEDIATE")
    raise KeyboardInterrupt


def test_an_interrupt_inside_a_store_write_still_ends_the_run_failed(store: Store) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), training_run(EXPERIMENT, "train_torch", "digits", "interrupted") as run:
        interrupted_inside_a_write()

    assert store.client.get_run(run.info.run_id).info.status == "FAILED"
    assert time.monotonic() - started < 10  # SQLite's busy timeout (20 s) was not waited out


# A stage whose store does not answer when the run should end: the run cannot be ended from here.
OWNER = """
import mlflow
from digitflow.tracking.runs import training_run

def unreachable(*args, **kwargs):
    raise mlflow.exceptions.MlflowException("the store did not answer")

with training_run("unit-tests", "train_torch", "digits", "unended") as run:
    print(run.info.run_id, flush=True)
    mlflow.MlflowClient.set_terminated = unreachable
    raise KeyboardInterrupt
"""


def test_a_run_its_stage_could_not_end_is_ended_failed_by_its_watchdog(store: Store) -> None:
    owner = subprocess.run(
        [sys.executable, "-c", OWNER],
        cwd=store.root,
        env=isolated_env(MLFLOW_TRACKING_URI=store.uri, PYTHONPATH=str(PROJECT_ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "KeyboardInterrupt" in owner.stderr, owner.stderr
    run_id = owner.stdout.split()[0]

    wait_until(lambda: store.client.get_run(run_id).info.status != "RUNNING", what="the watchdog to end the run")
    run = store.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE_TAG] == watchdog.ORPHANED

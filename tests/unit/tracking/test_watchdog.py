"""digitflow.tracking.watchdog with real processes and a real store: an owner killed outright leaves its run
FAILED, not RUNNING; an owner that ends its run itself leaves the watchdog nothing to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from digitflow.core.processes import isolated_env, process_alive
from digitflow.tracking import watchdog
from tests.conftest import PROJECT_ROOT
from tests.unit.tracking.conftest import Store

FAILURE_TAG = "digitflow.failure"
# An owner as a stage is one: it starts the watchdog of its run, says so, and works until it is killed.
OWNER = """
import sys, time
from digitflow.tracking import watchdog
process = watchdog.spawn(sys.argv[1], sys.argv[2])
print(process.pid, flush=True)
time.sleep(600)
"""


def wait_until(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def test_an_owner_killed_outright_leaves_its_run_failed(store: Store) -> None:
    run_id = store.new_run().info.run_id
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, run_id, store.uri],
        cwd=PROJECT_ROOT,  # this checkout's digitflow, for the owner and the watchdog it starts
        env=isolated_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        watchdog_pid = int(owner.stdout.readline())
        assert process_alive(watchdog_pid)
        time.sleep(0.5)
        assert store.client.get_run(run_id).info.status == "RUNNING"  # waiting costs the run nothing
    finally:
        owner.send_signal(signal.SIGKILL)  # no `finally`, no atexit: the owner cannot release it
        owner.wait()
        owner.stdout.close()

    wait_until(lambda: store.client.get_run(run_id).info.status != "RUNNING", what="the run to end")
    run = store.client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE_TAG] == watchdog.ORPHANED
    assert run.info.end_time is not None
    wait_until(lambda: not process_alive(watchdog_pid), timeout=30, what="the watchdog to exit")


def test_a_released_watchdog_exits_and_leaves_the_run_alone(store: Store) -> None:
    run_id = store.new_run().info.run_id
    process = watchdog.spawn(run_id, store.uri)
    store.client.set_terminated(run_id, "FINISHED")
    ended = store.client.get_run(run_id).info.end_time

    watchdog.release(process)

    assert process.wait(timeout=30) == 0
    run = store.client.get_run(run_id)
    assert (run.info.status, run.info.end_time) == ("FINISHED", ended)
    assert FAILURE_TAG not in run.data.tags


def test_release_is_trusted_without_asking_the_store(store: Store) -> None:
    """``done`` means the owner ended the run itself (or will): the watchdog does not even open the store,
    so a run that still reads RUNNING at that moment is left to its owner."""
    run_id = store.new_run().info.run_id
    process = watchdog.spawn(run_id, store.uri)
    watchdog.release(process)
    assert process.wait(timeout=30) == 0
    assert store.client.get_run(run_id).info.status == "RUNNING"


def test_the_watchdog_outlives_the_owners_process_group(store: Store) -> None:
    """Ctrl-C reaches the stage's whole process group; the watchdog is in a session of its own."""
    run_id = store.new_run().info.run_id
    process = watchdog.spawn(run_id, store.uri)
    try:
        assert os.getsid(process.pid) == process.pid != os.getsid(0)
    finally:
        watchdog.release(process)
        process.wait(timeout=30)


def test_the_tracking_uri_is_not_on_the_watchdogs_command_line(store: Store) -> None:
    """A URI may carry `user:password@`: it reaches the watchdog through its pipe, not where `ps` shows it."""
    run_id = store.new_run().info.run_id
    process = watchdog.spawn(run_id, "http://ci-bot:s3cret-password@127.0.0.1:9/")
    try:
        wait_until(lambda: Path(f"/proc/{process.pid}/cmdline").read_bytes() != b"", timeout=10, what="the exec")
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert run_id.encode() in command_line
        assert b"s3cret" not in command_line
    finally:
        watchdog.release(process)
        process.wait(timeout=30)

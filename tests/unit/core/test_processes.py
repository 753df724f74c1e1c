"""digitflow.core.processes: a child's environment without the caller's context, and whether a pid lives."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from digitflow.core.processes import NO_TELEMETRY, group_members, isolated_env, process_alive


def test_isolated_env_drops_the_callers_context_and_turns_telemetry_off() -> None:
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "MLFLOW_TRACKING_URI": "http://team:5000",
        "MLFLOW_TRACKING_PASSWORD": "secret",
        "DVC_EXP_NAME": "wise-owl",
        "DVC_ROOT": "/repo",
        "AWS_SECRET_ACCESS_KEY": "key",
        "PYTEST_CURRENT_TEST": "tests/x.py::test (call)",
        "PYTEST_XDIST_WORKER": "gw0",
        "MY_MLFLOW_NOTE": "not a prefix",
        "DO_NOT_TRACK": "0",
    }
    env = isolated_env(caller)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "MY_MLFLOW_NOTE": "not a prefix",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
    }
    assert set(NO_TELEMETRY) <= set(env)
    assert caller["MLFLOW_TRACKING_URI"] == "http://team:5000"  # the caller's mapping is not touched


def test_isolated_env_extra_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///caller.db")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "caller")
    env = isolated_env(MLFLOW_TRACKING_URI="sqlite:///child.db", DO_NOT_TRACK="1", EXTRA="x")
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///child.db"
    assert env["EXTRA"] == "x"
    assert "AWS_ACCESS_KEY_ID" not in env
    assert env["PATH"] == os.environ["PATH"]  # the default is this process's environment


def test_this_process_is_alive() -> None:
    assert process_alive(os.getpid())
    assert process_alive(1)


@pytest.mark.parametrize("pid", [0, -1])
def test_no_process_has_a_pid_below_one(pid: int) -> None:
    assert not process_alive(pid)


def test_a_process_that_ended_is_not_alive() -> None:
    child = subprocess.Popen(["sleep", "30"])
    assert process_alive(child.pid)
    child.kill()
    child.wait()  # reaped: the pid is free
    assert not process_alive(child.pid)


def test_a_zombie_is_not_alive() -> None:
    """A child that exited but was not waited for still has its pid (and answers signal 0)."""
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.05)
    os.kill(child.pid, 0)  # the kernel still knows it
    try:
        assert not process_alive(child.pid)
    finally:
        child.wait()


def test_group_members_are_a_new_sessions_live_processes() -> None:
    """A shell in a session of its own and the sleep it started; none once the group is killed."""
    leader = subprocess.Popen(["bash", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(group_members(leader.pid)) < 2:
            assert time.monotonic() < deadline, "the shell did not start its sleep"
            time.sleep(0.05)
        assert leader.pid in group_members(leader.pid)
        assert os.getpid() not in group_members(leader.pid)
    finally:
        os.killpg(leader.pid, 9)
        leader.wait()
    deadline = time.monotonic() + 30
    while group_members(leader.pid):  # the sleep, reparented, is reaped by init
        assert time.monotonic() < deadline, "a member outlived the group's kill"
        time.sleep(0.05)

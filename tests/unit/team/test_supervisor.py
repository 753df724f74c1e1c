"""digitflow.team.supervisor: a PID file is trusted only for the process it was written for."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitflow.core.processes import process_alive, process_identity
from digitflow.team.supervisor import read_pid, start_process, stop_process


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """Someone else's process, in its own process group, whose PID a stale PID file will name."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_a_started_service_is_recognised_and_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "service.pid"
    pid = start_process(["sleep", "120"], {}, tmp_path / "service.log", pid_file)
    record = json.loads(pid_file.read_text())
    assert record["pid"] == pid
    assert record["cmdline"] == ["sleep", "120"]
    assert record["start_time"] == process_identity(pid)["start_time"] > 0
    assert read_pid(pid_file) == pid
    assert stop_process(pid_file)
    assert not process_alive(pid)
    assert not pid_file.exists()


def test_a_pid_file_whose_pid_was_reused_is_stale_and_its_process_left_alone(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """The service died (a reboot, a crash) and its number now belongs to another process: `down` must not
    signal that process's group, and `up` must see the service as stopped (it starts it again)."""
    pid_file = tmp_path / "mlflow.pid"
    time.sleep(0.05)  # a later clock tick (10 ms): the same command line as the bystander, another start time
    start_process(["sleep", "120"], {}, tmp_path / "mlflow.log", pid_file)
    record = json.loads(pid_file.read_text())
    stop_process(pid_file)
    assert record["cmdline"] == process_identity(bystander.pid)["cmdline"], "only the start time tells them apart"
    pid_file.write_text(json.dumps({**record, "pid": bystander.pid}))  # the recorded start time is the old one

    assert read_pid(pid_file) is None, "`up` starts the service: the PID is not the service's"
    assert not pid_file.exists(), "the stale file is removed"
    pid_file.write_text(json.dumps({**record, "pid": bystander.pid}))
    assert stop_process(pid_file) is False, "`down` has nothing to stop"
    assert bystander.poll() is None, "the other process is alive"


@pytest.mark.parametrize("text", ["{pid}\n", "not json", '{"pid": {pid}}'])
def test_an_unverifiable_pid_file_is_not_trusted(tmp_path: Path, bystander: subprocess.Popen[bytes], text: str) -> None:
    """A plain number (the older format), a damaged file, a record without a start time: not signalled."""
    pid_file = tmp_path / "seaweedfs.pid"
    pid_file.write_text(text.replace("{pid}", str(bystander.pid)))
    assert stop_process(pid_file) is False
    assert bystander.poll() is None
    assert not pid_file.exists()

"""Waiting for a server a test started to answer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def wait_for_json(url: str, process: subprocess.Popen, timeout: float = 120) -> Any:
    """GET ``url`` until the server started as ``process`` answers with JSON (or dies, or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(1)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def model_server(command: list[str], cwd: Path, env: dict[str, str], port: int, timeout: float = 120) -> Iterator[None]:
    """Run ``command`` (``digitflow serve``, which becomes ``mlflow models serve``) in its own session until
    ``http://127.0.0.1:port/ping`` answers; stop it and its workers when the block ends. The port must be
    free: another server answering there would be tested instead."""
    assert not port_in_use(port), f"port {port} is taken: the documented command serves there"
    server = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, f"the model server did not start in {timeout} s"
                time.sleep(1)
        yield
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def invocations(port: int, rows: list[list[float]]) -> list[list[float]]:
    """POST rows of pixels to a model server's ``/invocations``, as MLflow's REST API takes them; its answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps({"inputs": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]

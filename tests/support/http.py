"""Waiting for a server a test started to answer."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
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

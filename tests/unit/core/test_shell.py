"""digitflow.core.shell: how a stage or command ends when the reader of its output goes away."""

from __future__ import annotations

import subprocess
import sys

from tests.support.imports import ROOT

LONG_OUTPUT = """
from digitflow.core.shell import run_stage
run_stage("lister", lambda: [print(f"line {n}") for n in range(200_000)])
"""


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """`digitflow ... | head -1`: no BrokenPipeError traceback, and a failing status as shell tools give."""
    with subprocess.Popen(
        [sys.executable, "-c", LONG_OUTPUT], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout.readline() == b"line 0\n"
        process.stdout.close()  # as `head -1` does once it has its line
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=60)
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr
    assert stderr == ""
    assert status == 1

"""A watchdog that ends an MLflow run FAILED when the process that owns it dies without ending it.

A stage killed outright (SIGKILL, the OOM killer, a closed terminal) cannot end its own run, and the
next ``dvc repro`` may never run the stage again (DVC can restore it from its run-cache), so a sweep
at the next training start is not enough. Each run therefore gets a small detached process that waits
on a pipe from its owner: a clean finish writes ``done``; end-of-file without it means the owner
died, and the watchdog marks the run FAILED if it is still RUNNING. Waiting costs nothing (a blocking
read); MLflow is imported only in the rare case that it has work to do.

    python -m digitflow.tracking.watchdog RUN_ID      (stdin: the pipe from the owner)

The tracking URI is the pipe's first line, not an argument: a URI may carry ``user:password@``, and every
user of the machine sees a process's arguments in ``ps``. The credentials it needs besides come with the
environment it inherits (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``), which only its owner can read.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

DONE = b"done\n"
# The failure tag a run ended here gets. "Exited", not "died": the owner may also have exited on its own
# after failing to reach the tracking store when it tried to end the run.
ORPHANED = "the stage's process exited without ending the run (killed, or the tracking store was unreachable)"


def spawn(run_id: str, tracking_uri: str) -> subprocess.Popen[bytes]:
    """Start the watchdog of ``run_id``; call ``release`` once the run has ended."""
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "digitflow.tracking.watchdog", run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives a Ctrl-C or kill of the stage's process group
    )
    watchdog.stdin.write(tracking_uri.encode() + b"\n")
    watchdog.stdin.flush()
    return watchdog


def release(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the watchdog the owner ended its run itself (FINISHED, or FAILED on an exception)."""
    with contextlib.suppress(OSError):
        watchdog.stdin.write(DONE)
        watchdog.stdin.close()


def main(run_id: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    tracking_uri = sys.stdin.buffer.readline().decode().rstrip("\n")
    if sys.stdin.buffer.read() == DONE:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status="FAILED")
        client.set_tag(run_id, "digitflow.failure", ORPHANED)


if __name__ == "__main__":
    main(sys.argv[1])

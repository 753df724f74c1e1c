"""A heartbeat for runs on a tracking server: a stage that trains for minutes without logging still
notices, within seconds, that its server is gone, and stops instead of finishing work it cannot record."""

from __future__ import annotations

import _thread
import threading

from digitflow.core.errors import TrackingStoreError
from digitflow.tracking.faults import is_store_failure, root_cause, store_repair_hint

# How often a run in progress checks that its tracking server is still there.
HEARTBEAT_SECONDS = 5.0


class Heartbeat:
    """Ask a tracking server for the run every ``every`` seconds while a stage works without logging
    (a long training loop); if the server is gone, interrupt the main thread, so the stage fails within
    a minute of losing it instead of when training ends. Only for HTTP stores: a local file cannot go
    away mid-run."""

    def __init__(self, uri: str, run_id: str, every: float = HEARTBEAT_SECONDS) -> None:
        self.uri, self.run_id, self.every = uri, run_id, every
        self.error: BaseException | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name="mlflow-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self.uri.startswith(("http://", "https://")):
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._stopped.set()

    def _beat(self) -> None:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        while not self._stopped.wait(self.every):
            try:
                client.get_run(self.run_id)
            except Exception as exc:
                if not is_store_failure(exc):
                    continue
                with self._lock:
                    if not self._stopped.is_set():
                        self.error = exc
                        _thread.interrupt_main()
                return

    def lost(self, uri: str, stage: str) -> TrackingStoreError | None:
        """The error to raise instead of the interrupt this heartbeat caused, if it caused one."""
        if self.error is None:
            return None
        return TrackingStoreError(
            f"the MLflow store at {uri} stopped answering during the {stage} run {self.run_id}, "
            f"so the stage stopped; no output was written: {root_cause(self.error)}\n{store_repair_hint(uri)}"
        )

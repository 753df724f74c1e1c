"""When the MLflow store fails: bounded waits, one message with the repair, no run left RUNNING.

MLflow retries each HTTP request 7 times with exponential backoff and waits up to 120 s for each
answer, so a tracking server that is down took minutes to report. The project lowers those defaults
through MLflow's own environment variables, and only where the user has not set them, so
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and the backoff variables keep
working as MLflow documents them.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, MutableMapping

from digitflow.core.errors import TrackingStoreError

log = logging.getLogger(__name__)

# Worst case against a server that refuses connections: 3 attempts, about 0 + 2 s of backoff plus up
# to 1 s of jitter each, so a few seconds per request. Against one that accepts but never answers:
# 3 x 10 s. Both keep a stage's failure well under a minute, and a healthy server answers in ms.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
URI_ENV_VAR = "MLFLOW_TRACKING_URI"
# How often a run in progress checks that its tracking server is still there.
HEARTBEAT_SECONDS = 5.0


def apply_http_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the project's retry and timeout defaults for MLflow's HTTP client, unless already set."""
    environ = os.environ if environ is None else environ
    for name, value in HTTP_DEFAULTS.items():
        if not environ.get(name):
            environ[name] = value


def is_store_failure(exc: BaseException) -> bool:
    """Errors raised by the store or the way to it (MLflow, HTTP, SQLAlchemy, SQLite), not by our code."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException | ConnectionError | TimeoutError):
        return True
    return type(exc).__module__.split(".")[0] in {"requests", "urllib3", "sqlalchemy", "alembic", "sqlite3"}


def _summary(exc: BaseException) -> str:
    """The root cause in one line (``ConnectionRefusedError: ...``, ``attempt to write a readonly
    database``) rather than MLflow's wrapper with its retry log or SQLAlchemy's with the SQL."""
    root = exc
    seen = {id(root)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    lines = str(root).strip().splitlines()
    text = " ".join((lines[0] if lines else "").split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def quiet_store_logs(debug: bool) -> None:
    """MLflow logs a store failure with its whole traceback before raising it; the stage's one message
    says it already. ``DIGITFLOW_DEBUG=1`` keeps MLflow's log."""
    if not debug:
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        # urllib3 logs each retry; the stage's message says where it gave up, and after how long.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def _text(exc: BaseException) -> str:
    """Every message in the exception's chain, for matching."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def repair_hint(uri: str, error_text: str = "") -> str:
    """What the user can do about a failing store at ``uri``."""
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        if "readonly database" in error_text:
            return (
                f"{db} is read-only: make it and its folder writable (`chmod u+w {db}`), "
                f"or set {URI_ENV_VAR} to another store."
            )
        return (
            f"Repair it with `mlflow db upgrade {uri}`; if that fails, move {db} aside "
            "(runs in it are kept there) and run the pipeline again to start a new store."
        )
    return (
        f"Check that the tracking server at {uri} is running and reachable, or fix {URI_ENV_VAR} "
        "(unset it to use the embedded store mlflow.db). MLFLOW_HTTP_REQUEST_MAX_RETRIES and "
        "MLFLOW_HTTP_REQUEST_TIMEOUT set how long to wait."
    )


def access_refused(uri: str, exc: BaseException, experiment: str | None) -> TrackingStoreError | None:
    """A server that refused the account (401) or its permission (403): say which account and how to
    get access, since MLflow's own message does not."""
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    code = getattr(exc, "error_code", "")
    if code == "UNAUTHENTICATED":
        who = f"the password of user {user!r}" if user else "the request: no credentials are set"
        return TrackingStoreError(
            f"the MLflow server at {uri} refused {who} (401). Set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an account on that server; its admin creates one with "
            "`python -m digitflow.team.stack add-user NAME` (README, Team setup)."
        )
    if code == "PERMISSION_DENIED":
        target = f"experiment {experiment!r}" if experiment else "this experiment or model"
        return TrackingStoreError(
            f"user {user!r} may not log to {target} on the MLflow server at {uri} (403); nothing was "
            f"logged. Ask its admin for EDIT: `python -m digitflow.team.stack add-user {user} --permission EDIT`."
        )
    return None


@contextlib.contextmanager
def store_errors(uri: str, doing: str, experiment: str | None = None) -> Iterator[None]:
    """Turn a store failure inside the block into one ``TrackingStoreError`` saying what was being done."""
    try:
        yield
    except TrackingStoreError:
        raise
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        if (refused := access_refused(uri, exc, experiment)) is not None:
            raise refused from exc
        raise TrackingStoreError(
            f"the MLflow store at {uri} failed while {doing}: {_summary(exc)}\n{repair_hint(uri, _text(exc))}"
        ) from exc


def end_run_quietly(status: str) -> None:
    """End the active run with ``status`` if the store still answers; never raise (we are already failing)."""
    import mlflow

    try:
        mlflow.end_run(status)
    except Exception as exc:  # the store is gone: the next run of the pipeline marks this run FAILED
        log.debug("could not mark the MLflow run %s: %s", status, exc)


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
            f"so the stage stopped; no output was written: {_summary(self.error)}\n{repair_hint(uri)}"
        )

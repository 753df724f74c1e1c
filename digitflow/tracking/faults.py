"""When the MLflow store fails: one message that says what was being done, why it failed (the root
cause, not MLflow's retry log), and how to repair it; a run that cannot go on ends FAILED.

How long a failing store is waited for is set in ``tracking.client_settings``; a server lost in the
middle of a run is noticed by ``tracking.heartbeat``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import traceback
from collections.abc import Iterator

from digitflow.core.errors import TrackingStoreError
from digitflow.tracking.links import without_credentials

log = logging.getLogger(__name__)

URI_ENV_VAR = "MLFLOW_TRACKING_URI"


def is_store_failure(exc: BaseException) -> bool:
    """Errors raised by the store or the way to it (MLflow, HTTP, SQLAlchemy, SQLite), not by our code."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException | ConnectionError | TimeoutError):
        return True
    return type(exc).__module__.split(".")[0] in {"requests", "urllib3", "sqlalchemy", "alembic", "sqlite3"}


def root_cause(exc: BaseException) -> str:
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


def _text(exc: BaseException) -> str:
    """Every message in the exception's chain, for matching."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def store_repair_hint(uri: str, error_text: str = "") -> str:
    """What the user can do about a failing store at ``uri``."""
    uri = without_credentials(uri)
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
    uri = without_credentials(uri)
    code = getattr(exc, "error_code", "")
    if code == "UNAUTHENTICATED":
        who = f"the password of user {user!r}" if user else "the request: no credentials are set"
        return TrackingStoreError(
            f"the MLflow server at {uri} refused {who} (401). Set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to an account on that server; its admin creates one with "
            "`digitflow stack add-user NAME` (docs/team.md)."
        )
    if code == "PERMISSION_DENIED":
        target = f"experiment {experiment!r}" if experiment else "this experiment or model"
        return TrackingStoreError(
            f"user {user!r} may not log to {target} on the MLflow server at {uri} (403); nothing was "
            f"logged. Ask its admin for EDIT: `digitflow stack add-user {user} --permission EDIT`."
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
        shown = without_credentials(uri)  # a URI may carry user:password@; messages end up in CI logs
        raise TrackingStoreError(
            f"the MLflow store at {shown} failed while {doing}: {root_cause(exc)}\n{store_repair_hint(uri, _text(exc))}"
        ) from exc


def end_run_quietly(status: str, cause: BaseException | None = None) -> bool:
    """End the active run with ``status`` if the store still answers; never raise (we are already failing).
    True if it ended.

    ``cause`` is what stopped the run. A Ctrl-C or SIGTERM that lands inside one of MLflow's SQLite writes
    leaves that write's connection, still holding the database's write lock, referenced only from the
    interrupted frames; ending the run would then wait out SQLite's 20 s busy timeout, fail, and leave the
    run RUNNING (twice in 100 interrupts of a loop of MLflow writes, measured). Clearing those frames'
    locals lets the connection go back to its pool, which rolls it back and frees the lock.
    """
    import mlflow

    if cause is not None:
        traceback.clear_frames(cause.__traceback__)
        gc.collect()
    try:
        mlflow.end_run(status)
    except Exception as exc:  # the store is gone: the next run of the pipeline marks this run FAILED
        log.debug("could not mark the MLflow run %s: %s", status, exc)
        return False
    return True

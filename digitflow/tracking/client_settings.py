"""How the project's MLflow client waits for a store, and what it logs about a failing one.

MLflow retries each HTTP request 7 times with exponential backoff and waits up to 120 s for each
answer, so a tracking server that is down took minutes to report. The project lowers those defaults
through MLflow's own environment variables, and only where the user has not set them, so
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and the backoff variables keep
working as MLflow documents them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

# Worst case against a server that refuses connections: 3 attempts, about 0 + 2 s of backoff plus up
# to 1 s of jitter each, so a few seconds per request. Against one that accepts but never answers:
# 3 x 10 s. Both keep a stage's failure well under a minute, and a healthy server answers in ms.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def apply_http_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the project's retry and timeout defaults for MLflow's HTTP client, unless already set."""
    environ = os.environ if environ is None else environ
    for name, value in HTTP_DEFAULTS.items():
        if not environ.get(name):
            environ[name] = value


def quiet_store_logs(debug: bool) -> None:
    """MLflow logs a store failure with its whole traceback before raising it; the stage's one message
    says it already. Its INFO lines (validating an input example, ...) are noise in a stage's log.
    ``DIGITFLOW_DEBUG=1`` keeps MLflow's log."""
    if not debug:
        # Set after `import mlflow`, which sets its logger's level (INFO) when a cold stage first imports
        # it; a warm stage's MLflow was imported by the server, so this keeps both stages' logs alike.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        # urllib3 logs each retry; the stage's message says where it gave up, and after how long.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

"""Links from the pull-request comment to each model's run on the team's MLflow server.

The training stages record each model's run id in ``metrics/train_<model>.json`` (what ``dvc exp show``
lists) and the run's experiment and store beside the model (``models/<model>/mlflow_run.json``). A link
is only possible when the runs live on a server, i.e. ``MLFLOW_TRACKING_URI`` is an http(s) URL; it opens the
run with MLflow's Model-training sidebar (``tracking.links.run_url``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from digitflow.core import paths
from digitflow.core.names import MODEL_NAMES, model_title
from digitflow.tracking.links import run_url
from digitflow.tracking.records import read_run_info


def mlflow_runs_section(environ: Mapping[str, str] | None = None, root: Path = Path()) -> str:
    """A Markdown section linking each model's MLflow run; empty when runs are not on a server."""
    environ = os.environ if environ is None else environ
    server = environ.get("MLFLOW_TRACKING_URI", "")
    if not server.startswith(("http://", "https://")):
        return ""
    rows = []
    for model in MODEL_NAMES:
        if not (root / paths.training_record_file(model)).exists():
            continue
        info = read_run_info(model, root)
        run_id = info.run_id
        title = model_title(model)
        if info.tracking_uri.startswith(("http://", "https://")):
            rows.append(f"| {title} | [`{run_id[:8]}`]({run_url(server, info.experiment_id, run_id)}) |")
        else:
            rows.append(f"| {title} | `{run_id[:8]}` (logged to {info.tracking_uri.split(':')[0]}, not the server) |")
    if not rows:
        return ""
    return "\n".join(["### MLflow runs", "", "| model | run |", "|---|---|", *rows, ""])

"""A training stage's record: which MLflow run (and registered version) made its model, and how long it
took.

``dvc metrics show`` / ``dvc metrics diff`` should list what a reviewer compares, and a clean
``dvc repro`` of an unchanged project should leave the committed files as they were. So the committed
metrics file of a training stage holds only train and validation accuracy and log loss
(``evaluation.metrics.reviewed_metrics``); what changes on every run (the MLflow run id and registered
version, the training time, the iteration count) goes to the stage's training record,
``metrics/runs/<model>.json``. DVC caches that file (it is not in git) and restores it with the model
from its run-cache, so ``evaluate`` finds the run that trained a restored model; the ``report`` stage
declares it as a params file, which is how ``dvc exp show`` lists each experiment's run id and
training time. Everything, precision, recall and F1 included, is still logged to the model's run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.inputs import read, reading
from digitflow.core.io import read_json, write_json
from digitflow.tracking.runs import RunInfo


def training_record(model: str, info: RunInfo, fit_seconds: float, **details: Any) -> dict[str, Any]:
    """The record's content, keyed by the model's name, so ``dvc exp show`` names its columns
    ``sklearn.mlflow_run_id`` and ``torch.fit_seconds`` (like ``sklearn.test_accuracy``)."""
    return {model: {**info.to_record(), "fit_seconds": round(fit_seconds, 4), **details}}


def write_training_record(model: str, info: RunInfo, fit_seconds: float, **details: Any) -> None:
    write_json(paths.training_record_file(model), training_record(model, info, fit_seconds, **details))


def run_info(record: Mapping[str, Any], model: str) -> RunInfo:
    """The MLflow run (and registered version) in a training record's content (KeyError if it has none)."""
    return RunInfo.from_record(record[model])


def read_run_info(model: str, root: Path = Path()) -> RunInfo:
    """The MLflow run (and registered version) that trained ``model``, from its training record."""
    path = root / paths.training_record_file(model)
    with reading(path):  # a record without this model's run is as damaged as unreadable JSON
        return run_info(read_json(path), model)


def read_training_summary(model: str) -> dict[str, Any]:
    """One model's reviewed metrics and its training record, for the report."""
    metrics = read(paths.train_metrics_file(model), read_json)
    return {**metrics, **read(paths.training_record_file(model), read_json)[model]}

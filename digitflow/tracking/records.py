"""What a training stage leaves for DVC: reviewed metrics in git, the rest of its record beside them.

``dvc metrics show`` / ``dvc metrics diff`` should list what a reviewer compares, and a clean
``dvc repro`` of an unchanged project should leave the committed files as they were. So the committed
metrics file of a training stage holds only train and validation accuracy and log loss (deterministic
for the same params and seed); what changes on every run (the MLflow run id and registered version,
the training time, the iteration count) goes to the stage's training record,
``metrics/runs/<model>.json``. DVC caches that file (it is not in git) and restores it with the model
from its run-cache, so ``evaluate`` finds the run that trained a restored model; the ``report`` stage
declares it as a params file, which is how ``dvc exp show`` lists each experiment's run id and
training time. Everything, precision, recall and F1 included, is still logged to the model's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.inputs import read, reading
from digitflow.core.io import read_json, write_json
from digitflow.tracking.runs import RunInfo

# Train and validation metrics kept in the committed metrics file of each training stage.
REVIEWED = ("accuracy", "log_loss")


def reviewed_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``train_accuracy``, ``train_log_loss``, ``val_accuracy``, ``val_log_loss`` of ``metrics``."""
    names = [f"{part}_{name}" for part in ("train", "val") for name in REVIEWED]
    return {name: metrics[name] for name in names if name in metrics}


def write_training_outputs(model: str, metrics: dict[str, float]) -> None:
    """The committed metrics file of one training stage (its reviewed metrics only)."""
    write_json(paths.train_metrics_file(model), reviewed_metrics(metrics))


def training_record(model: str, info: RunInfo, fit_seconds: float, **details: Any) -> dict[str, Any]:
    """The record's content, keyed by the model's name, so ``dvc exp show`` names its columns
    ``sklearn.mlflow_run_id`` and ``torch.fit_seconds`` (like ``sklearn.test_accuracy``)."""
    return {model: {**info.to_record(), "fit_seconds": round(fit_seconds, 4), **details}}


def write_training_record(model: str, info: RunInfo, fit_seconds: float, **details: Any) -> None:
    write_json(paths.training_record_file(model), training_record(model, info, fit_seconds, **details))


def read_run_info(model: str, root: Path = Path()) -> RunInfo:
    """The MLflow run (and registered version) that trained ``model``, from its training record."""
    path = root / paths.training_record_file(model)
    with reading(path):  # a record without this model's run is as damaged as unreadable JSON
        return RunInfo.from_record(read_json(path)[model])


def read_training_summary(model: str) -> dict[str, Any]:
    """One model's reviewed metrics and its training record, for the report."""
    metrics = read(paths.train_metrics_file(model), read_json)
    return {**metrics, **read(paths.training_record_file(model), read_json)[model]}

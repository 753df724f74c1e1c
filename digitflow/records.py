"""What a training stage leaves for DVC: reviewed metrics in git, the rest of its record beside the model.

``dvc metrics show`` / ``dvc metrics diff`` should list what a reviewer compares, and a clean
``dvc repro`` of an unchanged project should leave the committed files as they were. So the committed
metrics file of a training stage holds only train and validation accuracy and log loss (deterministic
for the same params and seed); the MLflow run id, the training time and the iteration count, which
change on every run, go to ``models/<model>/training.json``. That file travels with the model (DVC
caches and restores it with the model) and the ``report`` stage declares it as a params file, which is
how ``dvc exp show`` lists each experiment's run id and training time. Everything, precision, recall
and F1 included, is still logged to the model's MLflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from digitflow import paths
from digitflow.io import read_json, write_json

# Train and validation metrics kept in the committed metrics file of each training stage.
REVIEWED = ("accuracy", "log_loss")


def reviewed_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``train_accuracy``, ``train_log_loss``, ``val_accuracy``, ``val_log_loss`` of ``metrics``."""
    names = [f"{part}_{name}" for part in ("train", "val") for name in REVIEWED]
    return {name: metrics[name] for name in names if name in metrics}


def write_training_outputs(model: str, metrics: dict[str, float]) -> None:
    """The committed metrics file of one training stage (its reviewed metrics only)."""
    write_json(paths.train_metrics_file(model), reviewed_metrics(metrics))


def write_training_record(model_dir: Path, model: str, run_id: str, fit_seconds: float, **details: Any) -> None:
    """``training.json`` inside a model's (staging) folder: run id, training time and ``details``.

    Keyed by the model's name, so ``dvc exp show`` names its columns ``sklearn.mlflow_run_id`` and
    ``torch.fit_seconds`` (like ``sklearn.test_accuracy``), not by the file's full path.
    """
    record = {"mlflow_run_id": run_id, "fit_seconds": round(fit_seconds, 4), **details}
    write_json(Path(model_dir) / paths.TRAINING_RECORD_NAME, {model: record})


def read_training_summary(model: str) -> dict[str, Any]:
    """One model's reviewed metrics and its training record, for the report."""
    return {**read_json(paths.train_metrics_file(model)), **read_json(paths.training_record_file(model))[model]}

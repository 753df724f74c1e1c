"""Test results into MLflow, written once, into the run that stands for the model being evaluated.

Three rules keep ``mlflow ui`` truthful:

- **Idempotent.** A run records the digest of each test set it was evaluated on (tag
  ``digitflow.test_sets``). Evaluating the same model on the same test set again (``evaluate`` re-runs
  because the *other* model changed, or DVC restored this one from its run-cache) logs nothing, and
  since results are written through the client, never by reopening the run, its end time never moves.
- **New context, new step.** The same run evaluated on a different test set gets its metrics at the
  next step (0 for the first test set, 1 for the next ...), with tag ``digitflow.test_set.<step>``
  describing that set, and its tables and figures under ``test_set_<step>/``; step 0's stay at the
  artifact root. Each metric's history then reads as "one point per test set", in order.
- **Every DVC experiment has its own runs.** When ``evaluate`` runs in a DVC experiment whose training
  stage DVC restored from its run-cache, the model's training run belongs to another experiment. Its
  results then go to a run of this experiment (named like a training run, tagged ``dvc.exp_name``
  and ``digitflow.restored_from``) that copies the training run's params and metrics, so every
  experiment is found by its name with its params and test metrics, and none writes into another's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitflow.tracking.runs import RunInfo, run_name_base, training_run
from digitflow.tracking.store import TAG_PREFIX, prepare_experiment

log = logging.getLogger(__name__)

TEST_SETS_TAG = TAG_PREFIX + "test_sets"
RESTORED_FROM_TAG = TAG_PREFIX + "restored_from"


@dataclass(frozen=True)
class TestResults:
    """One model's results on one test set, as ``evaluate`` computed them."""

    model: str
    dataset: str
    test_set: Any  # mlflow.data dataset of the test images; its digest identifies them
    metrics: Mapping[str, float]
    confusion: dict
    # The confusion matrix's picture as evaluate saved it under reports/: MLflow gets these same bytes,
    # so the figure is drawn once, and the run and the report show one picture.
    confusion_png: Path
    per_class: Any  # pandas DataFrame
    # Precision, recall and F1 of each class by its name (``test_recall.circle``): MLflow metrics too.
    per_class_metrics: Mapping[str, float] = field(default_factory=dict)


def _stand_in_run(
    client: Any, source_id: str, source: Any, experiment_id: str, model: str, dataset: str, note: str
) -> str:
    """A run standing for a model trained in run ``source_id``; ``source`` is that run, or None when it is
    not in this store (it is still named, so the next evaluation finds this stand-in instead of making
    another)."""
    from mlflow.entities import Metric, Param

    extra = {RESTORED_FROM_TAG: source_id, TAG_PREFIX + "model": model, "mlflow.note.content": note}
    stage = f"train_{model}"
    with training_run(client.get_experiment(experiment_id).name, stage, dataset, run_name_base(model, dataset),
                      extra) as run:  # fmt: skip
        if source is not None:
            params = [Param(key, value) for key, value in source.data.params.items()]
            metrics = [
                Metric(m.key, m.value, m.timestamp, m.step)
                for key in source.data.metrics
                if not key.startswith("test_")
                for m in client.get_metric_history(source.info.run_id, key)
            ]
            for start in range(0, max(len(params), len(metrics)), 100):
                batch_metrics, batch_params = metrics[start : start + 100], params[start : start + 100]
                client.log_batch(run.info.run_id, metrics=batch_metrics, params=batch_params)
        return run.info.run_id


def target_run(
    client: Any, info: RunInfo, experiment: str, model: str, dataset: str, environ: Mapping[str, str] | None = None
) -> str:
    """The run that should hold this model's test results in the current context."""
    from mlflow.exceptions import MlflowException

    environ = os.environ if environ is None else environ
    experiment_id = prepare_experiment(experiment, client.tracking_uri)
    exp_name = environ.get("DVC_EXP_NAME")
    try:
        source = client.get_run(info.run_id)
    except MlflowException:
        source = None
    if source is not None and (not exp_name or source.data.tags.get("dvc.exp_name") == exp_name):
        return source.info.run_id
    context = f"tags.`dvc.exp_name` = '{exp_name}' and " if exp_name else ""
    existing = client.search_runs(
        [experiment_id], filter_string=f"{context}tags.`{RESTORED_FROM_TAG}` = '{info.run_id}'"
    )
    if existing:
        return existing[0].info.run_id
    if source is None:
        log.warning("MLflow run %s is not in %s; recording %s's results in a new run", info.run_id,
                    client.tracking_uri, model)  # fmt: skip
        note = (
            f"The model was trained in MLflow run {info.run_id} of another store ({info.tracking_uri}); "
            "DVC restored it here. Test results only."
        )
    else:
        log.info("experiment %s reuses the model of run %s; recording it in a run of its own", exp_name, info.run_id)
        note = (
            f"DVC restored this model from its run-cache for experiment {exp_name}; it was trained in run "
            f"{info.run_id} ({source.info.run_name}). Params and training metrics are copied from there."
        )
    return _stand_in_run(client, info.run_id, source, experiment_id, model, dataset, note)


def log_test_results(client: Any, run_id: str, results: TestResults) -> bool:
    """Log ``results`` into ``run_id`` unless that test set is already there; True if anything was logged."""
    import time

    from mlflow.entities import DatasetInput, InputTag, Metric
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    run = client.get_run(run_id)
    seen = json.loads(run.data.tags.get(TEST_SETS_TAG, "[]"))
    digest = results.test_set.digest
    if digest in seen:
        log.info("%s: run %s already holds the results on this test set; nothing to log", results.model, run_id)
        return False
    step = len(seen)
    now = int(time.time() * 1000)
    logged = [Metric(k, float(v), now, step) for k, v in {**results.metrics, **results.per_class_metrics}.items()]
    for start in range(0, len(logged), 1000):  # MLflow caps a batch at 1000 metrics
        client.log_batch(run_id, metrics=logged[start : start + 1000])
    folder = "" if step == 0 else f"test_set_{step}/"
    client.log_dict(run_id, results.confusion, f"{folder}test_confusion_matrix.json")
    with tempfile.TemporaryDirectory() as tmp:
        png = shutil.copyfile(results.confusion_png, Path(tmp, "test_confusion_matrix.png"))
        client.log_artifact(run_id, str(png), folder.rstrip("/") or None)
    client.log_table(run_id, results.per_class.reset_index(), f"{folder}test_classification_report.json")
    entity = results.test_set._to_mlflow_entity()
    client.log_inputs(run_id, [DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, "test")])])
    n_images = len(results.per_class) and int(results.per_class.loc["macro avg", "support"])
    client.set_tag(run_id, f"{TAG_PREFIX}test_set.{step}", f"{results.dataset} test set, {n_images} images, {digest}")
    client.set_tag(run_id, TEST_SETS_TAG, json.dumps([*seen, digest]))
    return True

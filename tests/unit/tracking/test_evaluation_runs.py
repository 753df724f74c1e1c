"""digitflow.tracking.evaluation_runs on a real MLflow store: test results are written once per test set,
at the next step for a new one, into the training run or, in a DVC experiment that reused another
experiment's model, into a stand-in run of its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.entities import Metric, Param

from digitflow.core.io import save_figure
from digitflow.data.datasets import DIGIT_CLASSES
from digitflow.evaluation.evaluate import evaluate_model
from digitflow.evaluation.figures import confusion_heatmap
from digitflow.evaluation.metrics import confusion_record, per_class_metrics
from digitflow.tracking import evaluation_runs
from digitflow.tracking.evaluation_runs import RESTORED_FROM_TAG, TEST_SETS_TAG, log_test_results, target_run
from digitflow.tracking.runs import RunInfo
from digitflow.tracking.training_log import dataset_input
from tests.unit.tracking.conftest import EXPERIMENT, Store

# MLflow's own log_table, under pandas 3: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:For backward compatibility, 'str' dtypes")


def results_on_test_set(
    folder: Path, seed: int, n_images: int = 50, wrong_every: int = 5
) -> evaluation_runs.TestResults:
    """A model's results on a test set of ``n_images`` random images (``seed`` makes the set); the
    confusion matrix's picture is saved in ``folder``, as evaluate saves it under reports/."""
    rng = np.random.default_rng(seed)
    features = rng.integers(0, 17, size=(n_images, 64)).astype(np.float32)
    labels = np.arange(n_images) % 10
    predicted = labels.copy()
    predicted[::wrong_every] = (labels[::wrong_every] + 1) % 10
    proba = np.full((n_images, 10), 0.01)
    proba[np.arange(n_images), predicted] = 0.91
    evaluation = evaluate_model("torch", labels, proba, DIGIT_CLASSES)
    png = folder / f"confusion_{seed}.png"
    save_figure(confusion_heatmap(evaluation.confusion, DIGIT_CLASSES, "test set"), png)
    return evaluation_runs.TestResults(
        "torch",
        "digits",
        dataset_input(features, labels, "digits", "test"),
        evaluation.metrics,
        confusion_record(evaluation.confusion, DIGIT_CLASSES),
        png,
        evaluation.per_class,
        per_class_metrics(evaluation.per_class, DIGIT_CLASSES),
    )


@pytest.fixture(scope="module")
def first_set(tmp_path_factory: pytest.TempPathFactory) -> evaluation_runs.TestResults:
    return results_on_test_set(tmp_path_factory.mktemp("figures"), seed=0)


@pytest.fixture(scope="module")
def second_set(tmp_path_factory: pytest.TempPathFactory) -> evaluation_runs.TestResults:
    return results_on_test_set(tmp_path_factory.mktemp("figures"), seed=1, n_images=30, wrong_every=3)


def finished_training_run(store: Store, evaluated: bool = False, **tags: str) -> str:
    """A training run as train_torch leaves it: params, per-epoch and summary metrics, FINISHED (and
    with its test metrics when its own experiment evaluated it)."""
    run_id = store.new_run(**{"digitflow.stage": "train_torch", **tags}).info.run_id
    now = int(time.time() * 1000)
    metrics = [Metric("val_loss", 1.0 / (step + 1), now, step) for step in range(3)]
    metrics.append(Metric("val_accuracy", 0.9, now, 0))
    if evaluated:
        metrics.append(Metric("test_accuracy", 0.5, now, 0))
    store.client.log_batch(run_id, metrics=metrics, params=[Param("lr", "0.01"), Param("epochs", "3")])
    store.client.set_terminated(run_id, "FINISHED")
    return run_id


def history(store: Store, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in store.client.get_metric_history(run_id, key)]


def artifact_names(store: Store, run_id: str, folder: str | None = None) -> list[str]:
    return sorted(artifact.path for artifact in store.client.list_artifacts(run_id, folder))


def test_results_go_in_once_per_test_set(store: Store, first_set: evaluation_runs.TestResults, tmp_path: Path) -> None:
    run_id = finished_training_run(store)
    before = store.client.get_run(run_id).info

    assert log_test_results(store.client, run_id, first_set) is True
    assert log_test_results(store.client, run_id, first_set) is False  # evaluate ran again: nothing new

    run = store.client.get_run(run_id)
    for key, value in first_set.metrics.items():
        assert history(store, run_id, key) == [(0, value)], key
    assert first_set.metrics["test_accuracy"] == 0.8
    digest = first_set.test_set.digest
    assert json.loads(run.data.tags[TEST_SETS_TAG]) == [digest]
    assert run.data.tags["digitflow.test_set.0"] == f"digits test set, 50 images, {digest}"
    assert artifact_names(store, run_id) == [
        "test_classification_report.json",
        "test_confusion_matrix.json",
        "test_confusion_matrix.png",
    ]
    # The picture the report shows, byte for byte: drawn once, not again for MLflow.
    logged = store.client.download_artifacts(run_id, "test_confusion_matrix.png", str(tmp_path))
    assert Path(logged).read_bytes() == first_set.confusion_png.read_bytes()
    (test_input,) = [i for i in run.inputs.dataset_inputs if i.dataset.digest == digest]
    assert [(tag.key, tag.value) for tag in test_input.tags] == [("mlflow.data.context", "test")]
    # Written through the client: the run is not reopened, so it stays FINISHED at its own end time.
    assert (run.info.status, run.info.end_time) == ("FINISHED", before.end_time)


def test_another_test_set_is_the_next_step(
    store: Store, first_set: evaluation_runs.TestResults, second_set: evaluation_runs.TestResults
) -> None:
    run_id = finished_training_run(store)
    assert log_test_results(store.client, run_id, first_set)

    assert log_test_results(store.client, run_id, second_set) is True
    assert log_test_results(store.client, run_id, first_set) is False  # an earlier set is still known

    accuracy = [first_set.metrics["test_accuracy"], second_set.metrics["test_accuracy"]]
    assert accuracy[0] != accuracy[1]
    assert history(store, run_id, "test_accuracy") == [(0, accuracy[0]), (1, accuracy[1])]
    tags = store.client.get_run(run_id).data.tags
    assert json.loads(tags[TEST_SETS_TAG]) == [first_set.test_set.digest, second_set.test_set.digest]
    assert tags["digitflow.test_set.1"] == f"digits test set, 30 images, {second_set.test_set.digest}"
    assert artifact_names(store, run_id, "test_set_1") == [
        "test_set_1/test_classification_report.json",
        "test_set_1/test_confusion_matrix.json",
        "test_set_1/test_confusion_matrix.png",
    ]
    confusion = mlflow.artifacts.load_dict(f"runs:/{run_id}/test_set_1/test_confusion_matrix.json")
    assert confusion == second_set.confusion


def info(run_id: str, store: Store) -> RunInfo:
    return RunInfo(run_id, store.experiment_id, store.uri, "digitflow-torch", "1")


def test_the_training_run_holds_its_results(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = finished_training_run(store)
    assert target_run(store.client, info(plain, store), EXPERIMENT, "torch", "digits") == plain
    # In the DVC experiment that trained it, too.
    in_experiment = finished_training_run(store, **{"dvc.exp_name": "wise-owl"})
    monkeypatch.setenv("DVC_EXP_NAME", "wise-owl")
    assert target_run(store.client, info(in_experiment, store), EXPERIMENT, "torch", "digits") == in_experiment


def test_an_experiment_that_reused_another_experiments_model_gets_a_run_of_its_own(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = finished_training_run(store, evaluated=True, **{"dvc.exp_name": "wise-owl"})
    monkeypatch.setenv("DVC_EXP_NAME", "proud-lark")  # DVC restored train_torch from its run-cache

    stand_in = target_run(store.client, info(trained, store), EXPERIMENT, "torch", "digits")

    assert stand_in != trained
    run = store.client.get_run(stand_in)
    assert run.info.experiment_id == store.experiment_id
    assert run.info.run_name == "torch-digits-proud-lark"
    assert run.info.status == "FINISHED"
    assert run.data.tags["dvc.exp_name"] == "proud-lark"
    assert run.data.tags[RESTORED_FROM_TAG] == trained
    assert run.data.tags["digitflow.model"] == "torch"
    assert trained in run.data.tags["mlflow.note.content"]
    # The training run's params and training metrics, with their history; not its test metrics.
    assert run.data.params == {"lr": "0.01", "epochs": "3"}
    assert history(store, stand_in, "val_loss") == history(store, trained, "val_loss")
    assert len(history(store, stand_in, "val_loss")) == 3
    assert "test_accuracy" not in run.data.metrics
    # The training run is left as it was.
    assert store.client.get_run(trained).data.tags["dvc.exp_name"] == "wise-owl"

    # evaluate again in the same experiment: the same stand-in; in another experiment: another one.
    assert target_run(store.client, info(trained, store), EXPERIMENT, "torch", "digits") == stand_in
    monkeypatch.setenv("DVC_EXP_NAME", "calm-heron")
    other = target_run(store.client, info(trained, store), EXPERIMENT, "torch", "digits")
    assert other not in (stand_in, trained)
    assert store.client.get_run(other).data.tags["dvc.exp_name"] == "calm-heron"


def test_a_model_trained_in_another_store_gets_a_stand_in_once(store: Store) -> None:
    elsewhere = RunInfo("0" * 32, "4", "http://teammate:5000", "digitflow-torch", "3")

    stand_in = target_run(store.client, elsewhere, EXPERIMENT, "torch", "digits")

    run = store.client.get_run(stand_in)
    assert run.data.tags[RESTORED_FROM_TAG] == "0" * 32
    assert "another store (http://teammate:5000)" in run.data.tags["mlflow.note.content"]
    assert run.data.params == {}
    assert target_run(store.client, elsewhere, EXPERIMENT, "torch", "digits") == stand_in

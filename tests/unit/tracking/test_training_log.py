"""digitflow.tracking.training_log: what both training stages log, checked in a real MLflow run."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from digitflow.core.params import load_params
from digitflow.data.datasets import DatasetMeta
from digitflow.evaluation.metrics import confusion, summary_metrics
from digitflow.models.card import model_card
from digitflow.tracking.runs import RunInfo
from digitflow.tracking.training_log import (
    fit_metrics,
    log_confusion_matrix,
    model_log_args,
    registered_run_info,
    run_params,
)
from tests.conftest import PROJECT_ROOT
from tests.unit.tracking.conftest import Store

DIGITS = DatasetMeta("digits", (8, 8), 1797, 16, None, "uci-digits")
MNIST = DatasetMeta("mnist", (28, 28), 70_000, 255, 60_000, "mnist")


def one_hot(labels: np.ndarray, confidence: float = 0.91) -> np.ndarray:
    proba = np.full((len(labels), 10), (1 - confidence) / 9)
    proba[np.arange(len(labels)), labels] = confidence
    return proba


@pytest.mark.parametrize(
    ("stage", "meta", "shape"), [("train_torch", DIGITS, "8x8"), ("train_sklearn", MNIST, "28x28")]
)
def test_run_params_are_the_stages_own_plus_what_defines_its_data(stage, meta, shape) -> None:
    params = load_params(PROJECT_ROOT / "params.yaml")
    logged = run_params(params, stage, meta)
    split = params.split
    assert logged == {
        **getattr(params, stage).model_dump(),
        "dataset": meta.dataset,
        "image_shape": shape,
        "split_test_size": split.test_size,
        "split_val_size": split.val_size,
        "split_seed": split.seed,
        "split_stratify_test": split.stratify_test,
    }


def test_fit_metrics_name_train_and_validation_apart() -> None:
    labels = np.tile(np.arange(10), 4)
    wrong = (labels + 1) % 10
    val_labels = labels[:20]
    val_predicted = np.where(np.arange(20) % 2 == 0, val_labels, wrong[:20])  # every other one wrong
    metrics = fit_metrics(labels, one_hot(labels), val_labels, one_hot(val_predicted))
    assert sorted(metrics) == sorted(
        f"{part}_{name}"
        for part in ("train", "val")
        for name in ("accuracy", "log_loss", "precision_macro", "recall_macro", "f1_macro")
    )
    assert metrics["train_accuracy"] == 1.0
    assert metrics["val_accuracy"] == 0.5
    assert metrics["val_log_loss"] > metrics["train_log_loss"]
    assert metrics["val_f1_macro"] == summary_metrics(val_labels, one_hot(val_predicted), "")["f1_macro"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_model_log_args_write_the_contract_as_the_signature(dtype) -> None:
    example = np.zeros((5, 64), dtype=np.float32)
    proba = one_hot(np.arange(5)).astype(dtype)
    args = model_log_args("torch", DIGITS, example, proba)
    assert (args["name"], args["registered_model_name"]) == ("model", "digitflow-torch")
    assert args["metadata"] == model_card(DIGITS)
    assert args["input_example"] is example
    (inputs,) = args["signature"].inputs.inputs
    (outputs,) = args["signature"].outputs.inputs
    assert (inputs.type, inputs.shape) == (np.dtype(np.float32), (-1, 64))
    assert (outputs.type, outputs.shape) == (np.dtype(dtype), (-1, 10))


@pytest.mark.parametrize("shape", [(5, 9), (4, 10), (5,), (5, 10, 1)])
def test_model_log_args_refuse_probabilities_of_the_wrong_shape(shape) -> None:
    example = np.zeros((5, 64), dtype=np.float32)
    with pytest.raises(ValueError, match=rf"expected probabilities of shape \(5, 10\), got \({shape[0]},"):
        model_log_args("sklearn", DIGITS, example, np.zeros(shape))


def test_the_confusion_matrix_is_logged_as_json_and_heatmap(store: Store) -> None:
    labels = np.tile(np.arange(10), 3)
    predicted = labels.copy()
    predicted[:4] = 7
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        matrix = log_confusion_matrix(labels, predicted, "val", "torch")
    np.testing.assert_array_equal(matrix, confusion(labels, predicted))
    run_id = run.info.run_id
    names = sorted(artifact.path for artifact in store.client.list_artifacts(run_id))
    assert names == ["val_confusion_matrix.json", "val_confusion_matrix.png"]
    record = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/val_confusion_matrix.json"))
    assert (record["rows"], record["columns"], record["labels"]) == ("actual", "predicted", [str(d) for d in range(10)])
    assert record["matrix"] == matrix.tolist()
    assert record["matrix"][0][7] == 1  # the 0 predicted as 7
    with Image.open(store.client.download_artifacts(run_id, "val_confusion_matrix.png", str(store.root))) as png:
        assert png.format == "PNG"
        assert min(png.size) > 100


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_model_logged_with_these_args_gives_the_run_record(store: Store) -> None:
    features, labels = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=50).fit(features[:300], labels[:300])
    example = features[300:305].astype(np.float32)
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        logged = mlflow.sklearn.log_model(
            model,
            pyfunc_predict_fn="predict_proba",
            serialization_format="pickle",
            pip_requirements=["scikit-learn"],
            **model_log_args("sklearn", DIGITS, example, model.predict_proba(example)),
        )
        info = registered_run_info(run, logged, "sklearn")
    assert info == RunInfo(run.info.run_id, store.experiment_id, store.uri, "digitflow-sklearn", "1")
    version = store.client.get_model_version("digitflow-sklearn", "1")
    assert version.run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/digitflow-sklearn/{info.model_version}")
    assert loaded.metadata.metadata == model_card(DIGITS)
    assert loaded.metadata.signature.inputs.inputs[0].shape == (-1, 64)
    np.testing.assert_allclose(loaded.predict(example), model.predict_proba(example), rtol=1e-6)

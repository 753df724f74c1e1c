"""digitflow.tracking.model_files and the champion on a real MLflow store: a version records the digest of
its files, and a champion whose files changed afterwards (a pickle planted in the artifact store) is refused
before anything in it runs; registering can be switched off."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from digitflow.core.params import TrainSklearnParams, TrainTorchParams
from digitflow.data.datasets import DatasetMeta
from digitflow.models import torch_model
from digitflow.models.card import ModelCard
from digitflow.models.sklearn_model import build_model, model_bytes
from digitflow.tracking.model_files import (
    BRANCH_TAG,
    DIGEST_TAG,
    ModelFilesError,
    files_digest,
    register_logged_model,
)
from digitflow.tracking.registry import champion_predictor, promote
from digitflow.tracking.sklearn_copy import log_sklearn_model
from digitflow.tracking.training_log import model_log_args
from tests.support.planted import planted_pickle
from tests.unit.tracking.conftest import Store

DIGITS = DatasetMeta("digits", (8, 8), 1797, 16, None, "uci-digits")
CARD = ModelCard("digits", (8, 8), 16, "uci-digits")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    features, labels = load_digits(return_X_y=True)
    return features.astype(np.float32), labels


def log_sklearn(store: Store, digits, environ: dict[str, str] | None = None):
    """What train_sklearn logs and registers, on a small fit; the fitted pipeline and the run record."""
    features, labels = digits
    model = build_model(TrainSklearnParams(max_iter=60)).fit(features[:400], labels[:400])
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        logged = log_sklearn_model(model, DIGITS, features[400:405])
        info = register_logged_model(run, logged, "sklearn", environ or {})
    return model, info


def artifact_folder(store: Store, name: str, version: str) -> Path:
    uri = store.client.get_model_version_download_uri(name, version)
    return Path(uri.removeprefix("file://"))


def test_a_registered_version_records_its_files_and_the_champion_predicts(store: Store, digits) -> None:
    model, info = log_sklearn(store, digits)
    assert (info.registered_model, info.model_version) == ("digitflow-sklearn", "1")
    version = store.client.get_model_version("digitflow-sklearn", "1")
    folder = artifact_folder(store, "digitflow-sklearn", "1")
    # The logged copy is models/'s own file, byte for byte, loaded by digitflow's loader, not pickle.
    assert (folder / "data" / "model.npz").read_bytes() == model_bytes(model)
    assert "loader_module: digitflow.models.sklearn_pyfunc" in (folder / "MLmodel").read_text()
    assert version.tags[DIGEST_TAG] == files_digest(folder)
    assert BRANCH_TAG in version.tags
    promote("sklearn", version="1", force=True, client=store.client, branch=None)

    predict, card = champion_predictor("sklearn", store.client)

    assert card == CARD
    rows = digits[0][1000:1020]
    np.testing.assert_allclose(predict(rows), model.predict_proba(rows), rtol=1e-6)


@pytest.mark.parametrize("planted", ["data/model.npz", "MLmodel"])
def test_a_champion_whose_files_changed_is_refused_before_anything_runs(
    store: Store, digits, tmp_path: Path, planted: str
) -> None:
    """Someone with write access to the artifact store replaces the model file with a pickle that would
    create a file when loaded, or rewrites MLmodel to load one with MLflow's pickle loader: the digest no
    longer matches."""
    log_sklearn(store, digits)
    promote("sklearn", version="1", force=True, client=store.client, branch=None)
    folder = artifact_folder(store, "digitflow-sklearn", "1")
    witness = tmp_path / "PLANTED_CODE_RAN"
    if planted == "data/model.npz":
        planted_pickle(folder / "data" / "model.npz", witness)
    else:
        mlmodel = folder / "MLmodel"
        mlmodel.write_text(mlmodel.read_text().replace("digitflow.models.sklearn_pyfunc", "mlflow.sklearn"))
        planted_pickle(folder / "data" / "model.pkl", witness)
    with pytest.raises(ModelFilesError, match="changed since it was registered"):
        champion_predictor("sklearn", store.client)
    assert not witness.exists()


def test_a_version_without_a_digest_is_refused(store: Store, digits) -> None:
    log_sklearn(store, digits)
    store.client.delete_model_version_tag("digitflow-sklearn", "1", DIGEST_TAG)
    promote("sklearn", version="1", force=True, client=store.client, branch=None)
    with pytest.raises(ModelFilesError, match="has no record of its files"):
        champion_predictor("sklearn", store.client)


def test_registering_can_be_switched_off(store: Store, digits) -> None:
    _model, info = log_sklearn(store, digits, {"DIGITFLOW_REGISTER": "false"})
    assert (info.registered_model, info.model_version) == (None, None)
    assert store.client.search_model_versions("name = 'digitflow-sklearn'") == []
    assert store.client.get_run(info.run_id).info.run_id == info.run_id  # the run and its model are logged


def test_the_torch_champion_loads_with_pickle_refused(store: Store, digits, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pt2 archive, read by MLflow with MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false (torch's restricted
    unpickler on every record), predicts as the trained module does."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # put back afterwards
    features, labels = digits
    net = torch_model.train_logistic_regression(
        features[:400], labels[:400], features[:50], labels[:50], TrainTorchParams(epochs=2), torch.device("cpu"),
        progress=False,
    ).model  # fmt: skip
    example = features[400:405]
    with mlflow.start_run(experiment_id=store.experiment_id) as run:
        logged = mlflow.pytorch.log_model(
            torch_model.ProbabilityModel(net),
            serialization_format="pt2",
            pip_requirements=["torch"],
            **model_log_args(DIGITS, example, torch_model.predict_proba(net, example)),
        )
        register_logged_model(run, logged, "torch", {})
    promote("torch", version="1", force=True, client=store.client, branch=None)

    predict, card = champion_predictor("torch", store.client)

    assert card == CARD
    rows = features[1000:1020]
    np.testing.assert_allclose(predict(rows), torch_model.predict_proba(net, rows), rtol=1e-6)

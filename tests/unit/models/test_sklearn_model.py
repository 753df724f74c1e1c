"""digitflow.models.sklearn_model: params map onto LogisticRegression; saved and loaded as numbers only, so a
planted pickle is refused without running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitflow.core.params import TrainSklearnParams
from digitflow.models.sklearn_model import (
    build_model,
    classifier,
    coefficients,
    load_model,
    save_model,
)
from tests.support.planted import planted_pickle


@pytest.fixture(scope="module")
def fitted():
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    model = build_model(TrainSklearnParams(max_iter=200)).fit(features[:1000], labels[:1000])
    return model, features[1000:], labels[1000:]


def test_build_model_maps_params():
    params = TrainSklearnParams(C=0.25, solver="saga", max_iter=77, tol=1e-3, class_weight="balanced")
    model = build_model(params, seed=5)
    got = classifier(model).get_params()
    assert (got["C"], got["solver"], got["max_iter"], got["tol"], got["class_weight"], got["random_state"]) == (
        0.25,
        "saga",
        77,
        1e-3,
        "balanced",
        5,
    )


def test_build_model_defaults():
    got = classifier(build_model(TrainSklearnParams())).get_params()
    assert got["class_weight"] is None
    assert got["random_state"] == 0
    assert got["solver"] == "lbfgs"


def test_save_load_round_trip_gives_identical_predictions(tmp_path: Path, fitted):
    model, features, labels = fitted
    path = tmp_path / "models" / "model.npz"
    save_model(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]
    loaded = load_model(path)
    assert loaded is not model
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    np.testing.assert_array_equal(classifier(loaded).coef_, classifier(model).coef_)
    assert (loaded.predict(features) == labels).mean() > 0.9


def test_a_planted_pickle_is_refused_without_running(tmp_path: Path):
    """A pickle that would create a file when unpickled, in the model's place: refused, nothing runs."""
    path, witness = planted_pickle(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="pickle"):
        load_model(path)
    assert not witness.exists()


def test_load_refuses_other_arrays_and_records(tmp_path: Path, fitted):
    other = tmp_path / "other.npz"
    np.savez(other, coef=np.zeros(3))
    with pytest.raises(ValueError, match="not a digitflow scikit-learn model"):
        load_model(other)
    objects = tmp_path / "objects.npz"
    np.savez(objects, header=np.array([{"format": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_model(objects)
    good = tmp_path / "good.npz"
    save_model(fitted[0], good)
    with np.load(good) as arrays:
        records = dict(arrays)
    np.savez(tmp_path / "extra.npz", **records, **{"logreg.predict_proba": np.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected record 'logreg\.predict_proba'"):
        load_model(tmp_path / "extra.npz")


@pytest.mark.parametrize("scaling", ["standard", "minmax", "none"])
def test_every_scaling_round_trips_to_the_same_bytes_and_predictions(tmp_path: Path, fitted, scaling: str):
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    model = build_model(TrainSklearnParams(scaling=scaling, class_weight="balanced", C=0.5), seed=3).fit(
        features, labels
    )
    save_model(model, tmp_path / "a.npz")
    loaded = load_model(tmp_path / "a.npz")
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    save_model(loaded, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_coefficients(fitted):
    model = fitted[0]
    coef, intercept = coefficients(model)
    assert coef.shape == (10, 64)
    assert intercept.shape == (10,)
    assert coef.dtype == intercept.dtype == np.float32
    np.testing.assert_allclose(coef, classifier(model).coef_, rtol=1e-6)


@pytest.mark.parametrize(("scaling", "step"), [("standard", "StandardScaler"), ("minmax", "MinMaxScaler")])
def test_the_scaler_is_a_step_of_the_model(scaling, step):
    model = build_model(TrainSklearnParams(scaling=scaling))
    assert type(model.named_steps["scaler"]).__name__ == step
    assert build_model(TrainSklearnParams(scaling="none")).named_steps["scaler"] == "passthrough"


def test_scaler_statistics_come_from_the_rows_it_is_fitted_on(fitted):
    from sklearn.datasets import load_digits

    features, _ = load_digits(return_X_y=True)
    np.testing.assert_allclose(fitted[0].named_steps["scaler"].mean_, features[:1000].mean(axis=0))


def test_equal_models_give_equal_file_bytes(tmp_path: Path):
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    for name in ("a", "b"):  # two fits: new objects, new Python ids
        save_model(build_model(TrainSklearnParams(max_iter=50)).fit(features, labels), tmp_path / name / "m.npz")
    assert (tmp_path / "a" / "m.npz").read_bytes() == (tmp_path / "b" / "m.npz").read_bytes()
    reloaded = load_model(tmp_path / "a" / "m.npz")
    assert (reloaded.predict(features) == labels).mean() > 0.9


SAVE_IN_A_NEW_PROCESS = """
import sys
from sklearn.datasets import load_digits
from digitflow.core.params import TrainSklearnParams
from digitflow.models.sklearn_model import build_model, save_model
features, labels = load_digits(return_X_y=True)
save_model(build_model(TrainSklearnParams(max_iter=50)).fit(features, labels), __import__("pathlib").Path(sys.argv[1]))
"""


def test_two_processes_write_the_same_bytes(tmp_path: Path):
    """What DVC sees: a clean run in a new process must hash the model exactly as the last one did."""
    for name in ("a.npz", "b.npz"):
        subprocess.run([sys.executable, "-c", SAVE_IN_A_NEW_PROCESS, str(tmp_path / name)], check=True)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()

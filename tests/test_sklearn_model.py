"""digitflow.sklearn_model: params map onto LogisticRegression; skops saves and loads it without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitflow.params import TrainSklearnParams
from digitflow.sklearn_model import build_model, classifier, coefficients, load_model, save_model


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
    path = tmp_path / "models" / "model.skops"
    save_model(model, path)
    assert [p.name for p in path.parent.iterdir()] == ["model.skops"]
    loaded = load_model(path)
    assert loaded is not model
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    np.testing.assert_array_equal(classifier(loaded).coef_, classifier(model).coef_)
    assert (loaded.predict(features) == labels).mean() > 0.9


def test_file_is_a_skops_zip_not_a_pickle(tmp_path: Path, fitted):
    path = tmp_path / "model.skops"
    save_model(fitted[0], path)
    assert path.read_bytes()[:4] == b"PK\x03\x04"


def arbitrary_code(values):
    return values


def test_load_refuses_untrusted_types(tmp_path: Path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "untrusted.skops"
    skops.io.dump(FunctionTransformer(func=arbitrary_code), path)
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException, match="arbitrary_code"):
        load_model(path)


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
        save_model(build_model(TrainSklearnParams(max_iter=50)).fit(features, labels), tmp_path / name / "m.skops")
    assert (tmp_path / "a" / "m.skops").read_bytes() == (tmp_path / "b" / "m.skops").read_bytes()
    reloaded = load_model(tmp_path / "a" / "m.skops")
    assert (reloaded.predict(features) == labels).mean() > 0.9

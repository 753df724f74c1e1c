"""digitflow.tracking.registry on a real MLflow store: test metrics on versions, promotion to @champion,
and loading the champion back as a predictor."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from digitflow.core.errors import DigitflowError
from digitflow.data.datasets import DatasetMeta
from digitflow.models.card import ModelCard, model_card
from digitflow.tracking.registry import (
    CHAMPION,
    PromotionError,
    champion_predictor,
    champion_uri,
    promote,
    record_test_metrics,
)
from digitflow.tracking.runs import RunInfo
from tests.unit.tracking.conftest import Store

SKLEARN = "digitflow-sklearn"


def register(store: Store, name: str = SKLEARN) -> RunInfo:
    """A training run and the registry version it produced (no metrics yet), as the trainers leave them."""
    client = store.client
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    run = store.new_run()
    version = client.create_model_version(name, source=str(store.root / run.info.run_id), run_id=run.info.run_id)
    return RunInfo(run.info.run_id, store.experiment_id, store.uri, name, str(version.version))


def evaluated(store: Store, **metrics: float) -> str:
    """A registered version that ``evaluate`` tagged with ``metrics``; its version number."""
    info = register(store)
    record_test_metrics(store.client, info, metrics)
    return info.model_version


def champion(store: Store, name: str = SKLEARN) -> str:
    return str(store.client.get_model_version_by_alias(name, CHAMPION).version)


def test_test_metrics_become_tags_of_the_version_the_run_produced(store: Store) -> None:
    info = register(store)
    record_test_metrics(store.client, info, {"test_accuracy": 0.9123456789, "test_log_loss": 0.25})
    tags = store.client.get_model_version(SKLEARN, info.model_version).tags
    assert tags == {"test_accuracy": "0.912346", "test_log_loss": "0.250000"}


def test_a_version_of_another_run_or_store_is_left_alone(store: Store) -> None:
    mine = register(store)
    # The same version number in this store, but made by another run (a record from another store).
    other_run = store.new_run().info.run_id
    record_test_metrics(store.client, RunInfo(other_run, "0", "sqlite:///elsewhere.db", SKLEARN, "1"), {"a": 1.0})
    # A version this store never had, and a record without a registered version.
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri, SKLEARN, "7"), {"b": 1.0})
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri), {"c": 1.0})
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri, "digitflow-torch", "1"), {"d": 1.0})
    assert store.client.get_model_version(SKLEARN, mine.model_version).tags == {}
    assert store.client.search_model_versions("name = 'digitflow-torch'") == []


def test_promote_picks_the_best_evaluated_version(store: Store) -> None:
    evaluated(store, test_accuracy=0.90, test_log_loss=0.20)
    best = evaluated(store, test_accuracy=0.95, test_log_loss=0.30)
    evaluated(store, test_accuracy=0.93, test_log_loss=0.25)
    register(store)  # trained but never evaluated: not a candidate

    promotion = promote("sklearn", client=store.client)

    assert (promotion.version, promotion.value, promotion.previous_version) == (best, 0.95, None)
    assert champion(store) == best
    assert promotion.describe() == (
        f"{SKLEARN} version {best} (test_accuracy 0.9500) is now @{CHAMPION} (there was no champion)"
    )


def test_a_loss_is_better_when_lower(store: Store) -> None:
    most_accurate = evaluated(store, test_accuracy=0.95, test_log_loss=0.30)
    lowest_loss = evaluated(store, test_accuracy=0.90, test_log_loss=0.20)
    promote("sklearn", client=store.client)
    assert champion(store) == most_accurate

    promotion = promote("sklearn", metric="test_log_loss", client=store.client)

    assert champion(store) == lowest_loss
    assert (promotion.previous_version, promotion.previous_value) == (most_accurate, 0.30)
    assert promotion.describe().endswith(f"replacing version {most_accurate} (test_log_loss 0.3000)")
    # ... and a version with a higher loss is refused as worse.
    with pytest.raises(PromotionError, match=f"version {lowest_loss}, is better"):
        promote("sklearn", metric="test_log_loss", version=most_accurate, client=store.client)


def test_a_tie_goes_to_the_newest_version(store: Store) -> None:
    evaluated(store, test_accuracy=0.95)
    newest = evaluated(store, test_accuracy=0.95)
    assert promote("sklearn", client=store.client).version == newest


def test_a_worse_version_is_refused_unless_forced(store: Store) -> None:
    worse = evaluated(store, test_accuracy=0.90)
    better = evaluated(store, test_accuracy=0.95)
    promote("sklearn", client=store.client)

    with pytest.raises(PromotionError) as refused:
        promote("sklearn", version=worse, client=store.client)
    message = str(refused.value)
    assert f"refusing to promote {SKLEARN} version {worse} (test_accuracy 0.9000)" in message
    assert f"version {better}, is better (test_accuracy 0.9500); use --force" in message
    assert champion(store) == better  # nothing moved

    forced = promote("sklearn", version=worse, force=True, client=store.client)
    assert champion(store) == worse
    assert (forced.previous_version, forced.previous_value) == (better, 0.95)


def test_promoting_the_champion_again_says_so(store: Store) -> None:
    only = evaluated(store, test_accuracy=0.9)
    promote("sklearn", client=store.client)
    again = promote("sklearn", version=only, client=store.client)
    assert again.describe().endswith(f"was already @{CHAMPION}")


def test_an_unevaluated_version_is_refused_unless_forced(store: Store) -> None:
    evaluated(store, test_accuracy=0.9)
    never = register(store).model_version
    with pytest.raises(PromotionError, match=rf"version {never} has no test_accuracy \(it was never evaluated"):
        promote("sklearn", version=never, client=store.client)

    forced = promote("sklearn", version=never, force=True, client=store.client)
    assert champion(store) == never
    assert math.isnan(forced.value)
    # A champion without the metric does not block an evaluated version.
    assert promote("sklearn", client=store.client).version == "1"


def test_nothing_to_promote(store: Store) -> None:
    nothing = r"no version of digitflow-torch has a test_accuracy tag yet: run the pipeline \(`dvc repro`\) first"
    with pytest.raises(PromotionError, match=nothing):
        promote("torch", client=store.client)
    register(store)
    with pytest.raises(PromotionError, match=r"no version of digitflow-sklearn has a test_f1_macro tag"):
        promote("sklearn", metric="test_f1_macro", client=store.client)
    with pytest.raises(PromotionError, match=r"digitflow-sklearn has no version 5 \(versions: 1\)"):
        promote("sklearn", version="5", client=store.client)


def test_champion_uri_names_the_alias_of_the_registered_model() -> None:
    assert champion_uri("torch") == f"models:/digitflow-torch@{CHAMPION}"
    assert champion_uri("sklearn") == f"models:/{SKLEARN}@{CHAMPION}"


@pytest.fixture(scope="module")
def tiny_model() -> tuple[LogisticRegression, np.ndarray]:
    features, labels = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=50).fit(features[:300], labels[:300]), features[300:310].astype(np.float32)


def log_sklearn(model: LogisticRegression, **metadata: object) -> None:
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=SKLEARN,
            serialization_format="pickle",
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn"],
            metadata=metadata or None,
        )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_champion_loads_as_a_predictor_with_its_card(store: Store, tiny_model) -> None:
    model, rows = tiny_model
    meta = DatasetMeta("digits", (8, 8), 1797, 16, None, "uci-digits")
    mlflow.set_experiment(experiment_id=store.experiment_id)
    log_sklearn(model, **model_card(meta))
    promote("sklearn", version="1", force=True, client=store.client)

    predict, card = champion_predictor(champion_uri("sklearn"))

    assert card == ModelCard("digits", (8, 8), 16, "uci-digits")
    np.testing.assert_allclose(predict(rows), model.predict_proba(rows), rtol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_model_without_digitflows_image_metadata_is_refused(store: Store, tiny_model) -> None:
    mlflow.set_experiment(experiment_id=store.experiment_id)
    log_sklearn(tiny_model[0])  # logged by hand: no card
    log_sklearn(tiny_model[0], dataset="digits")  # a card without the image shape
    for version in ("1", "2"):
        uri = f"models:/{SKLEARN}/{version}"
        with pytest.raises(DigitflowError, match=f"{uri} was not logged by digitflow's training stages"):
            champion_predictor(uri)

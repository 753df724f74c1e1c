"""digitflow.tracking.registry on a real MLflow store: test metrics on versions, promotion to @champion,
and loading the champion back as a predictor."""

from __future__ import annotations

import math

import pytest

from digitflow.tracking.model_files import BRANCH_TAG
from digitflow.tracking.registry import (
    CHAMPION,
    PromotionError,
    champion_uri,
    promote,
    record_test_metrics,
)
from digitflow.tracking.runs import RunInfo
from tests.unit.tracking.conftest import Store

SKLEARN = "digitflow-sklearn"


def register(store: Store, name: str = SKLEARN, branch: str = "main") -> RunInfo:
    """A training run and the registry version it produced (no metrics yet), as the trainers leave them:
    tagged with the git branch it was trained on."""
    client = store.client
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    run = store.new_run()
    version = client.create_model_version(
        name, source=str(store.root / run.info.run_id), run_id=run.info.run_id, tags={BRANCH_TAG: branch}
    )
    return RunInfo(run.info.run_id, store.experiment_id, store.uri, name, str(version.version))


def evaluated(store: Store, branch: str = "main", **metrics: float) -> str:
    """A registered version that ``evaluate`` tagged with ``metrics``; its version number."""
    info = register(store, branch=branch)
    record_test_metrics(store.client, info, metrics)
    return info.model_version


def champion(store: Store, name: str = SKLEARN) -> str:
    return str(store.client.get_model_version_by_alias(name, CHAMPION).version)


def test_test_metrics_become_tags_of_the_version_the_run_produced(store: Store) -> None:
    info = register(store)
    record_test_metrics(store.client, info, {"test_accuracy": 0.9123456789, "test_log_loss": 0.25})
    tags = store.client.get_model_version(SKLEARN, info.model_version).tags
    assert tags == {BRANCH_TAG: "main", "test_accuracy": "0.912346", "test_log_loss": "0.250000"}


def test_a_version_of_another_run_or_store_is_left_alone(store: Store) -> None:
    mine = register(store)
    # The same version number in this store, but made by another run (a record from another store).
    other_run = store.new_run().info.run_id
    record_test_metrics(store.client, RunInfo(other_run, "0", "sqlite:///elsewhere.db", SKLEARN, "1"), {"a": 1.0})
    # A version this store never had, and a record without a registered version.
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri, SKLEARN, "7"), {"b": 1.0})
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri), {"c": 1.0})
    record_test_metrics(store.client, RunInfo(mine.run_id, "0", store.uri, "digitflow-torch", "1"), {"d": 1.0})
    assert store.client.get_model_version(SKLEARN, mine.model_version).tags == {BRANCH_TAG: "main"}
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
    nothing = (
        r"no version of digitflow-torch trained on branch 'main' has a test_accuracy tag yet: run the pipeline "
        r"\(`dvc repro`\) first"
    )
    with pytest.raises(PromotionError, match=nothing):
        promote("torch", client=store.client)
    register(store)
    with pytest.raises(
        PromotionError, match=r"no version of digitflow-sklearn trained on branch 'main' has a test_f1_macro tag"
    ):
        promote("sklearn", metric="test_f1_macro", client=store.client)
    with pytest.raises(PromotionError, match=r"digitflow-sklearn has no version 5 \(versions: 1\)"):
        promote("sklearn", version="5", client=store.client)


def test_champion_uri_names_the_alias_of_the_registered_model() -> None:
    assert champion_uri("torch") == f"models:/digitflow-torch@{CHAMPION}"
    assert champion_uri("sklearn") == f"models:/{SKLEARN}@{CHAMPION}"


def test_only_mains_versions_are_ranked_unless_asked(store: Store) -> None:
    """A branch that was never merged may hold the most accurate model (or claim to): promote ranks main's."""
    mains = evaluated(store, test_accuracy=0.90)
    branch = evaluated(store, branch="try-something", test_accuracy=0.99)
    unknown = register(store, branch="")  # registered by hand, no branch recorded
    record_test_metrics(store.client, unknown, {"test_accuracy": 1.0})
    unknown = unknown.model_version

    assert promote("sklearn", client=store.client).version == mains
    with pytest.raises(PromotionError, match=r"trained on branch 'try-something', not 'main'.*--any-branch"):
        promote("sklearn", version=branch, client=store.client)
    assert champion(store) == mains
    assert promote("sklearn", client=store.client, branch=None).version == unknown
    assert promote("sklearn", client=store.client, branch="try-something", force=True).version == branch


def test_no_version_of_main_says_where_the_others_are(store: Store) -> None:
    evaluated(store, branch="feature", test_accuracy=0.9)
    with pytest.raises(PromotionError, match=r"trained on branch 'main' has a test_accuracy tag yet \(1 of other"):
        promote("sklearn", client=store.client)

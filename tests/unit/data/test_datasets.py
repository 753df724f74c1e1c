"""digitflow.data.datasets: the classic digits split, stratified validation, raw pixels with no statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from digitflow.core.errors import ParamsError
from digitflow.core.params import SplitParams
from digitflow.data.datasets import (
    N_CLASSES,
    DatasetMeta,
    flatten_images,
    load_digits_images,
    preprocess_images,
    split_indices,
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits_images()


def assert_partition(split, n: int) -> None:
    parts = [split.train, split.val, split.test]
    for part in parts:
        assert np.all(np.diff(part) > 0), "indices must be sorted and unique"
    everything = np.concatenate(parts)
    assert len(everything) == n
    assert np.array_equal(np.sort(everything), np.arange(n))


def test_digits_images_and_labels(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8)
    assert images.dtype == np.uint8
    assert images.max() == 16
    assert labels.dtype == np.int64
    assert set(np.unique(labels)) == set(range(N_CLASSES))


def test_default_split_reproduces_the_classic_notebook_test_set(digits):
    _, labels = digits
    split = split_indices(labels, SplitParams())
    # The notebook: train_test_split(X, y, test_size=0.23, random_state=2) on the 1797 digits.
    _, classic_test = train_test_split(np.arange(1797), test_size=0.23, random_state=2)
    assert len(split.test) == math.ceil(0.23 * 1797) == 414
    assert np.array_equal(split.test, np.sort(classic_test))
    assert_partition(split, 1797)


def test_validation_is_a_stratified_fraction_of_the_rest(digits):
    _, labels = digits
    params = SplitParams()
    split = split_indices(labels, params)
    rest = np.concatenate([split.train, split.val])
    assert len(split.val) == math.ceil(params.val_size * len(rest))
    rest_share = np.bincount(labels[rest], minlength=N_CLASSES) / len(rest)
    val_counts = np.bincount(labels[split.val], minlength=N_CLASSES)
    # Stratified: each class's validation count is its share of the rest, rounded (within one image).
    assert np.all(np.abs(val_counts - rest_share * len(split.val)) <= 1)


def test_stratified_test_option_keeps_class_proportions(digits):
    _, labels = digits
    split = split_indices(labels, SplitParams(stratify_test=True))
    share = np.bincount(labels, minlength=N_CLASSES) / len(labels)
    test_counts = np.bincount(labels[split.test], minlength=N_CLASSES)
    assert np.all(np.abs(test_counts - share * len(split.test)) <= 1)
    assert_partition(split, len(labels))


def test_seed_changes_the_split(digits):
    _, labels = digits
    a = split_indices(labels, SplitParams(seed=2))
    b = split_indices(labels, SplitParams(seed=2))
    c = split_indices(labels, SplitParams(seed=3))
    assert np.array_equal(a.test, b.test)
    assert np.array_equal(a.val, b.val)
    assert not np.array_equal(a.test, c.test)


def test_predefined_test_set_is_kept_as_the_tail():
    labels = np.arange(1200) % N_CLASSES
    split = split_indices(labels, SplitParams(test_size=0.5), predefined_test_start=1000)
    # test_size is ignored: the published test set is the test set.
    assert np.array_equal(split.test, np.arange(1000, 1200))
    assert split.train.max() < 1000
    assert split.val.max() < 1000
    assert len(split.val) == math.ceil(0.1 * 1000)
    assert np.array_equal(np.bincount(labels[split.val], minlength=N_CLASSES), np.full(N_CLASSES, 10))
    assert_partition(split, 1200)


@pytest.mark.test_tools
def test_split_is_a_partition() -> None:
    # hypothesis comes with the test extra: imported here, so that a plain install collects this module.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(
        n=st.integers(400, 3000),
        n_classes=st.integers(2, N_CLASSES),
        test_size=st.floats(0.05, 0.6),
        val_size=st.floats(0.05, 0.5),
        seed=st.integers(0, 2**31 - 1),
        stratify_test=st.booleans(),
        predefined=st.booleans(),
    )
    def check(n, n_classes, test_size, val_size, seed, stratify_test, predefined):
        labels = np.random.default_rng(seed).permutation(np.arange(n) % n_classes)
        params = SplitParams(test_size=test_size, val_size=val_size, seed=seed, stratify_test=stratify_test)
        test_start = n - int(n * test_size) if predefined else None
        n_test = n - test_start if predefined else math.ceil(test_size * n)
        too_small = math.ceil(val_size * (n - n_test)) < n_classes or (
            stratify_test and not predefined and n_test < n_classes
        )
        if too_small:
            with pytest.raises(ParamsError, match=r"split\.(val|test)_size .* fewer than the \d+ classes"):
                split_indices(labels, params, test_start)
            return
        split = split_indices(labels, params, test_start)
        assert_partition(split, n)
        if predefined:
            assert np.array_equal(split.test, np.arange(test_start, n))
        else:
            assert len(split.test) == math.ceil(test_size * n)
        rest = n - len(split.test)
        assert len(split.val) == math.ceil(val_size * rest)
        # Every class appears in training (stratified validation never takes a whole class).
        assert len(np.unique(labels[split.train])) == n_classes

    check()


def test_too_small_a_validation_fraction_names_the_param():
    labels = np.arange(200) % N_CLASSES
    with pytest.raises(ParamsError, match=r"split\.val_size = 0\.05 gives 8 of 154 images, fewer than the 10 classes"):
        split_indices(labels, SplitParams(val_size=0.05))


def test_flatten_images_gives_float32_rows():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    features = flatten_images(images)
    assert features.dtype == np.float32
    assert features.shape == (2, 12)
    assert np.array_equal(features[1], np.arange(12, 24, dtype=np.float32))


@pytest.mark.parametrize("shape", [(5, 64), (5,), (5, 1, 8, 8)])
def test_flatten_images_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match=r"\(n, height, width\)") as caught:
        flatten_images(np.zeros(shape))
    assert str(shape) in str(caught.value)


def test_preprocess_keeps_pixel_values_and_computes_no_statistics():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 17, size=(600, 4, 4)).astype(np.uint8)
    labels = np.arange(600) % N_CLASSES
    features, out_labels = preprocess_images(images, labels)
    assert features.dtype == np.float32
    assert out_labels.dtype == np.int64
    np.testing.assert_array_equal(features, images.reshape(600, -1).astype(np.float32))
    # Each row depends on its own image alone: changing other images changes nothing else.
    altered = images.copy()
    altered[100:] = 16
    np.testing.assert_array_equal(preprocess_images(altered, labels)[0][:100], features[:100])


def test_dataset_meta_json_round_trip():
    meta = DatasetMeta("mnist", (28, 28), 70000, 255, 60000, "mnist")
    data = meta.to_json()
    # JSON turns tuples into lists; from_json must give back an equal (hashable) meta.
    data["image_shape"] = list(data["image_shape"])
    assert DatasetMeta.from_json(data) == meta
    assert isinstance(DatasetMeta.from_json(data).image_shape, tuple)


# --- split sizes that leave too few images: the key that is the cause, and advice that works --------


def test_huge_test_size_blames_test_size_with_advice_that_works(digits):
    _, labels = digits
    with pytest.raises(ParamsError) as caught:
        split_indices(labels, SplitParams(test_size=0.995))
    message = str(caught.value)
    assert message.startswith("split.test_size = 0.995 leaves 8 of 1797 images")
    assert "val_size" not in message
    advised = float(message.rsplit("at most ", 1)[1])
    assert 0.5 < advised < 0.995
    assert_partition(split_indices(labels, SplitParams(test_size=advised)), 1797)


def test_huge_val_size_blames_val_size_with_advice_that_works(digits):
    _, labels = digits
    with pytest.raises(ParamsError) as caught:
        split_indices(labels, SplitParams(val_size=0.995))
    message = str(caught.value)
    assert message.startswith("split.val_size = 0.995 leaves 6 of 1383 images for training")
    advised = float(message.rsplit("at most ", 1)[1])
    assert advised < 0.995
    split = split_indices(labels, SplitParams(val_size=advised))
    assert len(np.unique(labels[split.train])) == N_CLASSES


def test_small_val_size_advice_works(digits):
    _, labels = digits
    with pytest.raises(ParamsError, match=r"raise split\.val_size to at least ([\d.]+)") as caught:
        split_indices(labels, SplitParams(val_size=0.001))
    advised = float(str(caught.value).rsplit("at least ", 1)[1])
    assert len(np.unique(labels[split_indices(labels, SplitParams(val_size=advised)).val])) == N_CLASSES

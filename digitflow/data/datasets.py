"""Dataset decoding, scaling and splitting: pure functions over arrays, no file I/O except loaders.

Both datasets become the same thing after ``preprocess``: a float32 matrix of flattened images in the
dataset's own pixel values (no statistics: scaling is part of each model), int64 labels and a small
description (image shape, pixel range, where a predefined test set starts). Later stages load the
matrix memory-mapped, so it is decoded once and never copied whole into each process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import reading
from digitflow.core.io import read_json
from digitflow.core.params import SplitParams
from digitflow.data.split_check import check_rest, check_test_size

# scikit-learn is imported inside the functions that use it: stages that only read arrays (report, the
# trainers' loaders) then skip its import, about a second each.

N_CLASSES = 10
CLASS_NAMES = tuple(str(digit) for digit in range(N_CLASSES))
# The value of full ink in each dataset's own pixels: digits counts 4x4 blocks of a 32x32 bitmap
# (0..16), MNIST is 8-bit greyscale (0..255). Both have ink as the high values on a zero background.
PIXEL_MAX = {"digits": 16, "mnist": 255}
# How each dataset's images were made from scans: the recipe ``digitflow predict`` follows to turn a photo
# into such an image (see digitflow/models/image_recipes.py). It travels in meta.json into the model card.
IMAGE_RECIPES = {"digits": "uci-digits", "mnist": "mnist"}


@dataclass(frozen=True)
class DatasetMeta:
    """What later stages need to know about the preprocessed images."""

    dataset: str
    image_shape: tuple[int, int]
    n_images: int
    pixel_max: int
    # Index of the first image of a published test set (MNIST's 10,000 images), or None.
    predefined_test_start: int | None
    image_recipe: str

    @classmethod
    def from_json(cls, data: dict) -> DatasetMeta:
        return cls(**{**data, "image_shape": tuple(data["image_shape"])})

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as uint8 images (values 0..16) and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def flatten_images(images: np.ndarray) -> np.ndarray:
    """(n, h, w) images of any numeric type -> (n, h*w) float32."""
    if images.ndim != 3:
        raise ValueError(f"expected images shaped (n, height, width), got shape {images.shape}")
    return images.reshape(len(images), -1).astype(np.float32)


def split_indices(labels: np.ndarray, params: SplitParams, predefined_test_start: int | None = None) -> SplitIndices:
    """Train / validation / test indices, sorted.

    With a predefined test set (MNIST) that set stays the test set and validation is a stratified
    ``val_size`` fraction of the rest. Otherwise ``test_size`` is taken first, exactly as
    ``train_test_split(X, y, test_size, random_state=seed)`` does in the classic digits notebook
    (stratified if ``stratify_test``), then a stratified validation fraction from what remains.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    n_classes = len(np.unique(labels))
    if predefined_test_start is not None:
        train_val, test = everything[:predefined_test_start], everything[predefined_test_start:]
    else:
        check_test_size(len(labels), n_classes, params.test_size, params.stratify_test)
        train_val, test = train_test_split(
            everything,
            test_size=params.test_size,
            random_state=params.seed,
            stratify=labels if params.stratify_test else None,
        )
    test_size = None if predefined_test_start is not None else params.test_size
    check_rest(labels, train_val, params.val_size, n_classes, test_size, params.seed, params.stratify_test)
    train, val = train_test_split(
        train_val, test_size=params.val_size, random_state=params.seed, stratify=labels[train_val]
    )
    return SplitIndices(train=np.sort(train), val=np.sort(val), test=np.sort(test))


def preprocess_images(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to float32 rows in the dataset's own pixel values; scaling belongs to each model."""
    return flatten_images(images), np.asarray(labels, dtype=np.int64)


@dataclass(frozen=True)
class SplitData:
    """Features and labels of one part of the split; features may be a memory-mapped view."""

    features: np.ndarray
    labels: np.ndarray


def load_meta(path: Path = paths.PROCESSED_META_FILE) -> DatasetMeta:
    with reading(path):
        return DatasetMeta.from_json(read_json(path))


def load_split(part: str) -> SplitData:
    """Load ``train``, ``val`` or ``test`` from the preprocessed matrix and the split indices."""
    with reading(paths.FEATURES_FILE):
        features = np.load(paths.FEATURES_FILE, mmap_mode="r")
    with reading(paths.LABELS_FILE):
        labels = np.load(paths.LABELS_FILE)
    with reading(paths.SPLIT_INDICES_FILE), np.load(paths.SPLIT_INDICES_FILE) as indices:
        rows = indices[part]
    return SplitData(features=np.ascontiguousarray(features[rows]), labels=labels[rows])

"""Stage preprocess: decode images to a float32 matrix, scaled with training-set statistics."""

from __future__ import annotations

import logging

import numpy as np

from digitflow import paths
from digitflow.artifacts import reading
from digitflow.cli import run_stage
from digitflow.data import DatasetMeta, preprocess_images
from digitflow.io import atomic_dir, save_array, write_json
from digitflow.params import load_params

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    dataset = params.data.dataset
    if dataset == "digits":
        with reading(paths.RAW_DIGITS_FILE), np.load(paths.RAW_DIGITS_FILE) as raw:
            images, labels = raw["images"], raw["labels"]
        test_start = None
    else:
        from digitflow.mnist import load_mnist_images

        with reading(paths.RAW_DIR):
            images, labels, test_start = load_mnist_images(paths.RAW_DIR)

    features, labels = preprocess_images(images, labels, params.preprocess.scaling, params.split, test_start)
    meta = DatasetMeta(
        dataset=dataset,
        image_shape=tuple(images.shape[1:]),
        n_images=len(images),
        scaling=params.preprocess.scaling,
        predefined_test_start=test_start,
    )
    with atomic_dir(paths.PROCESSED_DIR) as out:
        save_array(out / paths.FEATURES_FILE.name, features)
        save_array(out / paths.LABELS_FILE.name, labels)
        save_array(out / paths.IMAGES_FILE.name, images)
        write_json(out / paths.PROCESSED_META_FILE.name, meta.to_json())
    log.info("%d images -> %s float32 features, scaling %s", len(images), features.shape, meta.scaling)


if __name__ == "__main__":
    run_stage("preprocess", main)

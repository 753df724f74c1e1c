"""Stage preprocess: decode images to a float32 matrix of flattened images, in their own pixel values.

No statistics are computed here: scaling is fitted by each model on its training rows and travels
inside the model, so a served model takes raw pixels.
"""

from __future__ import annotations

import logging

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import reading
from digitflow.core.io import atomic_dir, save_array, write_json
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import IMAGE_RECIPES, PIXEL_MAX, DatasetMeta, preprocess_images

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    dataset = params.data.dataset
    if dataset == "digits":
        with reading(paths.RAW_DIGITS_FILE), np.load(paths.RAW_DIGITS_FILE) as raw:
            images, labels = raw["images"], raw["labels"]
        test_start = None
    else:
        from digitflow.data.mnist import load_mnist_images

        with reading(paths.RAW_DIR):
            images, labels, test_start = load_mnist_images(paths.RAW_DIR)

    features, labels = preprocess_images(images, labels)
    meta = DatasetMeta(
        dataset=dataset,
        image_shape=tuple(images.shape[1:]),
        n_images=len(images),
        pixel_max=PIXEL_MAX[dataset],
        predefined_test_start=test_start,
        image_recipe=IMAGE_RECIPES[dataset],
    )
    with atomic_dir(paths.PROCESSED_DIR) as out:
        save_array(out / paths.FEATURES_FILE.name, features)
        save_array(out / paths.LABELS_FILE.name, labels)
        write_json(out / paths.PROCESSED_META_FILE.name, meta.to_json())
    log.info("%d images -> %s float32 features (pixels 0..%d)", len(images), features.shape, meta.pixel_max)


if __name__ == "__main__":
    run_stage("preprocess", main)

"""Stage check: the data checks before training (digitflow/data/checks.py) on the split dataset:
duplicates, the same picture under two classes, leakage between the parts of the split, class counts and
imbalance, what the pictures are. Written to reports/data_check.json, which the report shows and both
trainers log to MLflow; each finding is also a line of the stage's output."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import read, read_npz
from digitflow.core.io import read_json, write_json
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.checks import SIZES
from digitflow.data.datasets import DatasetMeta, load_meta

log = logging.getLogger(__name__)
FOLDER_HASH = "SHA-256 of each picture's decoded pixels, upright (EXIF) and in RGBA"
ARRAY_HASH = "SHA-256 of each image's pixel values as the dataset stores them"


def folder_inputs() -> dict[str, Any]:
    """A folder's pictures as fetch recorded them: hashes, paths, sizes, modes, what was left out."""
    import pandas as pd

    records = read(paths.RAW_FOLDER_RECORDS_FILE, pd.read_csv, dtype=str, keep_default_na=False)
    folder = read(paths.RAW_FOLDER_META_FILE, read_json)
    return {
        "digests": records["pixels_sha256"].tolist(),
        "names": records["path"].tolist(),
        "seen": {
            SIZES: (records["width"] + "x" + records["height"]).tolist(),
            "modes": records["mode"].tolist(),
            "formats": records["format"].tolist(),
        },
        "hashing": FOLDER_HASH,
        "left_out": {
            "unreadable": [tuple(item) for item in folder["unreadable"]],
            "outside_classes": folder["outside_classes"],
            "no_ink": records.loc[records["blank"] == "True", "path"].tolist(),
        },
    }


def array_inputs(meta: DatasetMeta) -> dict[str, Any]:
    """digits' and MNIST's images as the dataset stores them: one size, grey values."""
    from digitflow.data.checks import row_digests

    features = read(paths.FEATURES_FILE, np.load, mmap_mode="r")
    height, width = meta.image_shape
    return {
        "digests": row_digests(features),
        "names": [f"image {index}" for index in range(len(features))],
        "seen": {
            SIZES: [f"{width}x{height}"] * len(features),
            "modes": [f"grey 0..{meta.pixel_max}"] * len(features),
        },
        "hashing": ARRAY_HASH,
        "left_out": {},
    }


def main() -> None:
    load_params()  # validate before any work, as every stage does
    from digitflow.data.checks import summarise

    meta = load_meta()
    labels = read(paths.LABELS_FILE, np.load)
    split = read_npz(paths.SPLIT_INDICES_FILE)
    parts = {part: split[part] for part in ("train", "val", "test")}
    inputs = folder_inputs() if meta.dataset == "folder" else array_inputs(meta)
    summary = summarise(meta.dataset, meta.class_names, labels, parts=parts, **inputs)
    write_json(paths.DATA_CHECK_FILE, summary)
    for finding in summary["findings"]:
        log.info("%s", finding)


if __name__ == "__main__":
    run_stage("check", main)

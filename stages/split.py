"""Stage split: stratified train / validation / test indices into the preprocessed matrix."""

from __future__ import annotations

import logging

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import reading
from digitflow.core.io import save_arrays
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_meta, split_indices

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    meta = load_meta()
    with reading(paths.LABELS_FILE):
        labels = np.load(paths.LABELS_FILE)
    split = split_indices(labels, params.split, meta.predefined_test_start, meta.class_names)
    save_arrays(paths.SPLIT_INDICES_FILE, train=split.train, val=split.val, test=split.test)
    log.info("train %d, validation %d, test %d images", len(split.train), len(split.val), len(split.test))


if __name__ == "__main__":
    run_stage("split", main)

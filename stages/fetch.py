"""Stage fetch: put the raw dataset under data/raw/.

digits: scikit-learn's bundled images, no network. mnist: the four original files through torchvision's
checksummed download, from ``fetch.mirrors`` or ``$DIGITFLOW_MNIST_MIRRORS``. folder: every picture of
``data.folder`` (its dependency in dvc.yaml), checked and brought to ``data.image_size`` by the folder
recipe, as ``digitflow predict`` will bring a picture for the model.
"""

from __future__ import annotations

import logging

from digitflow.core import paths
from digitflow.core.io import atomic_dir, save_arrays
from digitflow.core.params import load_params
from digitflow.core.progress import download_bars_only_in_a_terminal
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_digits_images

log = logging.getLogger(__name__)


def main() -> None:
    params = load_params()
    with atomic_dir(paths.RAW_DIR) as raw_dir:
        if params.data.dataset == "digits":
            images, labels = load_digits_images()
            save_arrays(raw_dir / paths.RAW_DIGITS_FILE.name, images=images, labels=labels)
            log.info("saved %d digits images to %s", len(images), paths.RAW_DIGITS_FILE)
        elif params.data.dataset == "folder":
            from digitflow.models.folder_dataset import read_folder_dataset, write_folder_dataset

            log.info("reading the pictures in %s", params.data.folder)
            write_folder_dataset(read_folder_dataset(params.data), params.data, raw_dir)
        else:
            from digitflow.data.mnist import download_mnist, resolve_mirrors

            mirrors = resolve_mirrors(params.fetch.mirrors)
            log.info("downloading MNIST from %s", ", ".join(mirrors))
            with download_bars_only_in_a_terminal():
                download_mnist(raw_dir, mirrors, timeout=params.fetch.timeout, deadline=params.fetch.deadline)
            log.info("MNIST verified and extracted under %s", paths.RAW_DIR)


if __name__ == "__main__":
    run_stage("fetch", main)

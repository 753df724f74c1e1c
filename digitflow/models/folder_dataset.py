"""A folder of your own pictures made into a dataset (``data.dataset: folder``): the fetch stage's work.

Each picture is read once (``data.image_folder``), described and hashed, and converted by the folder
recipe (``image_recipes.convert``, the function ``digitflow predict`` uses, with the same options the
model card will record). Unreadable files are refused, or left out and listed; a picture filed under
two classes is refused, naming the files. What comes out is what digits' fetch writes (images and
labels), plus a record per picture and the folder's description for the data checks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitflow.core import paths
from digitflow.core.io import save_arrays, write_json
from digitflow.core.params import DataParams
from digitflow.core.progress import EpochProgress
from digitflow.data.checks import refuse_cross_class_duplicates
from digitflow.data.datasets import IMAGE_RECIPES, PIXEL_MAX
from digitflow.data.image_folder import FolderImages, read_folder
from digitflow.models.image_recipes import convert

log = logging.getLogger(__name__)
RECORD_COLUMNS = ("path", "class_name", "width", "height", "mode", "format", "pixels_sha256", "blank", "problems")


def recipe_options(data: DataParams) -> dict[str, Any]:
    """The folder recipe's options as params.yaml sets them; recorded in meta.json and the model card."""
    return {"ink": data.ink, "centre_ink": data.centre_ink}


@dataclass
class _Progress:
    """A bar in a terminal, a few plain lines otherwise, once the number of files is known."""

    enabled: bool = True
    bar: EpochProgress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = EpochProgress(total, desc="reading images", enabled=self.enabled, unit="file")
        self.bar.update(done)
        if done == total:
            self.bar.close()


def read_folder_dataset(data: DataParams, progress: bool = True) -> FolderImages:
    """Every picture of ``data.folder``, converted to ``data.image_size`` by the folder recipe and
    checked: unreadable files and pictures under two classes are refused (see ``read_folder``)."""
    shape = (data.image_size[0], data.image_size[1])
    options = recipe_options(data)

    def to_image(picture: Any) -> tuple[np.ndarray, list[str]]:
        conversion = convert(picture, IMAGE_RECIPES["folder"], shape, PIXEL_MAX["folder"], options)
        return conversion.pixels, conversion.problems

    images = read_folder(Path(data.folder), to_image, data.skip_unreadable, _Progress(progress))
    names = [record.path for record in images.records]
    refuse_cross_class_duplicates(
        [record.pixels_sha256 for record in images.records], images.labels, names, images.class_names
    )
    return images


def write_folder_dataset(images: FolderImages, data: DataParams, raw_dir: Path) -> None:
    """The converted images and labels, a CSV record per picture, and the folder's description."""
    import pandas as pd

    save_arrays(raw_dir / paths.RAW_FOLDER_IMAGES_FILE.name, images=images.images, labels=images.labels)
    table = pd.DataFrame(images.records_table(), columns=list(RECORD_COLUMNS))
    table.to_csv(raw_dir / paths.RAW_FOLDER_RECORDS_FILE.name, index=False)
    write_json(
        raw_dir / paths.RAW_FOLDER_META_FILE.name,
        {
            "folder": data.folder,
            "class_names": list(images.class_names),
            "image_shape": list(data.image_size),
            "recipe_options": recipe_options(data),
            "unreadable": [list(item) for item in images.unreadable],
            "outside_classes": images.outside_classes,
        },
    )
    no_ink = sum(record.blank for record in images.records)
    log.info(
        "%d pictures of %d classes (%s) -> %dx%d images%s%s",
        len(images.records),
        len(images.class_names),
        ", ".join(images.class_names),
        *data.image_size,
        f"; unreadable files left out: {len(images.unreadable)}" if images.unreadable else "",
        f"; pictures with no ink found: {no_ink} (check data.ink)" if no_ink else "",
    )

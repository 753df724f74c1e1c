"""Photos of dataset digits as a phone or scanner makes them, and models to read them: for the tests and
the photo benchmark (``benchmarks/photos.py``), not for the pipeline.

A dataset image is light ink on a zero background, centred and size-normalised. A photo of the same
digit is dark ink on paper that is off-white (grey 211-247), lit a little unevenly, slightly out of
focus, with sensor noise, in colour, at whatever size and place the user framed it. ``photo`` makes
one from a dataset image in a given ``PhotoStyle``; ``photo_styles`` gives a deterministic mix of
styles covering those ranges; ``drawn_large`` is the plain case: the image enlarged, dark on light.

``train_models`` trains both models of a dataset as ``dvc repro`` would (the stages' library functions
and params.yaml's settings, MLflow aside) and writes them with the stages' own writer, model card
included, so ``digitflow predict`` reads them as it reads the pipeline's: seconds instead of a run.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class PhotoStyle:
    """How one photo is taken. Sizes are (width, height) in pixels, levels 0..255 grey."""

    paper: float = 230.0  # the paper's grey level (photographed white paper: 211-247)
    ink: float = 40.0  # the grey level of full ink
    fill: float = 0.6  # the digit's height as a fraction of the frame's height
    size: tuple[int, int] = (200, 200)
    position: tuple[float, float] = (0.5, 0.5)  # the digit's place in the free space, 0..1 (left, top)
    blur: float = 1.0  # Gaussian sigma in pixels of the photo (focus, motion)
    noise: float = 4.0  # sensor noise, standard deviation in grey levels
    shading: float = 8.0  # the paper is this much lighter on the right than on the left
    mode: str = "RGB"  # RGB (warm paper, blue-black ink) or L

    def describe(self) -> str:
        return (
            f"paper {self.paper:.0f}, fill {self.fill:.0%}, {self.size[0]}x{self.size[1]} {self.mode}, "
            f"blur {self.blur:g}, noise {self.noise:g}"
        )


def photo(image: np.ndarray, pixel_max: float, style: PhotoStyle, rng: np.random.Generator) -> Image.Image:
    """A photo of a dataset image (light ink on zero, values 0..``pixel_max``) taken in ``style``."""
    rows, cols = np.nonzero(image)
    digit = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32) / pixel_max
    width, height = style.size
    digit_height = max(1, round(style.fill * height))
    digit_width = max(1, min(width, round(digit.shape[1] * digit_height / digit.shape[0])))
    ink = Image.fromarray(digit, mode="F").resize((digit_width, digit_height), Image.Resampling.BICUBIC)
    left = round(style.position[0] * (width - digit_width))
    top = round(style.position[1] * (height - digit_height))
    coverage = np.zeros((height, width), np.float32)
    coverage[top : top + digit_height, left : left + digit_width] = np.clip(np.asarray(ink), 0, 1)

    paper = style.paper + style.shading * (np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :])
    grey = paper - (paper - style.ink) * coverage
    grey = ndimage.gaussian_filter(grey, style.blur) if style.blur > 0 else grey
    if style.mode == "L":
        channels = grey[..., None]
    else:  # warm paper; the ink a little blue
        channels = np.stack([grey, grey * 0.985, grey * 0.95 + 8 * coverage], axis=-1)
    channels = channels + rng.normal(0, style.noise, channels.shape)
    pixels = np.clip(np.round(channels), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if style.mode == "L" else pixels, mode=style.mode)


PAPERS = (211, 224, 236, 247)
FILLS = (0.3, 0.5, 0.7, 0.9)
SIZES = ((200, 200), (173, 241), (320, 181), (96, 96), (640, 480))
BLURS = (0.0, 1.0, 2.0)
NOISES = (2.0, 5.0, 9.0)
MODES = ("RGB", "L")


def photo_styles(count: int, seed: int = 0) -> list[PhotoStyle]:
    """``count`` styles going through every combination of the listed paper levels, fills, sizes, blurs,
    noise levels and modes in a shuffled order (from ``seed``), with random ink level, position and
    shading. Blur scales with the size: a 640x480 photo is blurred over more pixels than a 96x96 one."""
    rng = np.random.default_rng(seed)
    combinations = list(itertools.product(PAPERS, FILLS, SIZES, BLURS, NOISES, MODES))
    order = itertools.cycle(rng.permutation(len(combinations)))
    styles = []
    for _ in range(count):
        paper, fill, size, blur, noise, mode = combinations[next(order)]
        styles.append(
            PhotoStyle(
                paper=float(paper),
                ink=float(rng.uniform(15, 90)),
                fill=fill,
                size=size,
                position=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))),
                blur=blur * min(size) / 200,
                noise=noise,
                shading=float(rng.uniform(-12, 12)),
                mode=mode,
            )
        )
    return styles


def drawn_large(
    image: np.ndarray, pixel_max: float, size: int = 200, paper: float = 235.0, ink: float = 30.0
) -> Image.Image:
    """A dataset image drawn large: upscaled smoothly (bicubic) to ``size`` x ``size``, dark ink on light
    paper, greyscale."""
    coverage = Image.fromarray(image.astype(np.float32) / pixel_max, mode="F")
    coverage = np.clip(np.asarray(coverage.resize((size, size), Image.Resampling.BICUBIC)), 0, 1)
    return Image.fromarray(np.round(paper - (paper - ink) * coverage).astype(np.uint8), mode="L")


@dataclass(frozen=True)
class LabelledImages:
    """A dataset's test images as the dataset stores them (light ink on zero), with their labels."""

    images: np.ndarray
    labels: np.ndarray
    pixel_max: int


def train_models(project: Path, dataset: str, params_file: Path, mnist_dir: Path | None = None) -> LabelledImages:
    """Train both models of ``dataset`` as the pipeline's stages do, write them into ``project/models/``
    (model cards included) and return the test set they were not trained on.

    The data come as fetch, preprocess and split make them (MNIST copied and checked from ``mnist_dir``,
    a folder with the four original files); the settings are ``params_file``'s, for ``dataset``."""
    import torch

    from digitflow.core.determinism import set_torch_threads
    from digitflow.core.params import parse_params
    from digitflow.data import datasets as data
    from digitflow.data import mnist
    from digitflow.models import sklearn_model, torch_model
    from digitflow.models.folder import write_model_dir

    params = parse_params({**yaml.safe_load(params_file.read_text()), "data": {"dataset": dataset}})
    if dataset == "mnist":
        if mnist_dir is None:
            raise ValueError("MNIST needs mnist_dir, a folder with the four original files")
        mnist.download_mnist(project / "data" / "raw", [mnist.normalize_mirror(str(mnist_dir))])
        images, labels, test_start = mnist.load_mnist_images(project / "data" / "raw")
    else:
        (images, labels), test_start = data.load_digits_images(), None
    features, labels = data.preprocess_images(images, labels)
    split = data.split_indices(labels, params.split, test_start)
    meta = data.DatasetMeta(
        dataset=dataset,
        image_shape=tuple(images.shape[1:]),
        n_images=len(images),
        pixel_max=data.PIXEL_MAX[dataset],
        predefined_test_start=test_start,
        image_recipe=data.IMAGE_RECIPES[dataset],
    )
    train, val = split.train, split.val
    classifier = sklearn_model.build_model(params.train_sklearn, seed=params.split.seed)
    classifier.fit(features[train], labels[train])
    set_torch_threads(params.train_torch.threads)
    net = torch_model.train_logistic_regression(
        features[train], labels[train], features[val], labels[val], params.train_torch, torch.device("cpu"),
        progress=False,
    ).model  # fmt: skip
    started_in = Path.cwd()
    os.chdir(project)  # the stages' paths are relative to the project (contextlib.chdir needs Python 3.11)
    try:
        write_model_dir(
            "sklearn", partial(sklearn_model.save_model, classifier), sklearn_model.coefficients(classifier), meta
        )
        write_model_dir("torch", partial(torch_model.save_model, net), torch_model.coefficients(net), meta)
    finally:
        os.chdir(started_in)
    return LabelledImages(images[split.test], labels[split.test], meta.pixel_max)

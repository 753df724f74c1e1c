"""Figures as pure functions: arrays in, a matplotlib ``Figure`` out, nothing written.

They use ``matplotlib.figure.Figure`` directly rather than pyplot, so no display, backend or global
figure state is involved and a figure is freed as soon as it is dropped. Figures with one entry per class
grow with the number of classes and shorten long class names, so they stay legible from 2 classes to
several dozen (ten digits keep their usual size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return max(1, -(-n // ncols)), ncols


NAME_LENGTH = 14  # characters of a class name shown in a figure; longer ones end with an ellipsis


def short_name(name: str, length: int = NAME_LENGTH) -> str:
    """``name`` cut to ``length`` characters, the last an ellipsis, so that labels do not overlap."""
    return name if len(name) <= length else name[: length - 1] + "\u2026"


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    ncols: int = 10,
    title: str | None = None,
    title_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of grey images, each with a caption (a label, or 'pred 3 / true 8')."""
    if len(images) != len(titles):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    nrows, ncols = _grid(max(len(images), 1), ncols)
    lines = max((caption.count("\n") + 1 for caption in titles), default=1)
    # Constrained layout keeps two-line captions clear of the title above them.
    height = (1.2 + 0.2 * lines) * nrows + (0.5 if title else 0)
    figure = Figure(figsize=(max(1.2 * ncols, 3.0 if title else 0), height), layout="constrained")
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(images):
            ax.imshow(images[index], cmap="gray_r", interpolation="nearest")
            color = title_colors[index] if title_colors else "black"
            ax.set_title(titles[index], fontsize=8, color=color)
    if title:
        figure.suptitle(title)
    return figure


def confusion_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Counts with actual classes as rows and predictions as columns, each cell annotated.

    Up to 12 classes at the usual size; beyond, a third of an inch per class and smaller numbers. Names
    too long to sit side by side under the columns are written upwards."""
    matrix = np.asarray(matrix)
    n = len(labels)
    if matrix.shape != (n, n):
        raise ValueError(f"expected a {n}x{n} matrix, got shape {matrix.shape}")
    names = [short_name(str(label)) for label in labels]
    longest = max((len(name) for name in names), default=1)
    side = max(0.0, 0.34 * (n - 12))
    figure = Figure(figsize=(5.2 + side, 4.6 + side))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n)
    ax.set_xticks(ticks, names, rotation=90 if longest > 2 and longest * n > 40 else 0)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    fontsize = 7 if n <= 12 else max(4.5, 7 - 0.12 * (n - 12))
    for row, col in np.ndindex(matrix.shape):
        color = "white" if matrix[row, col] > threshold else "black"
        ax.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=fontsize, color=color)
    return figure


def learning_curves(history: pd.DataFrame, title: str = "PyTorch learning curves") -> Figure:
    """Loss and accuracy per epoch, train against validation."""
    required = {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    missing = required - set(history.columns)
    if missing:
        raise ValueError(f"history is missing columns {sorted(missing)}")
    figure = Figure(figsize=(9, 3.6))
    loss_ax, acc_ax = figure.subplots(1, 2)
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        for part in ("train", "val"):
            ax.plot(history["epoch"], history[f"{part}_{metric}"], marker="o", markersize=3, label=part)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    return figure


def coefficient_titles(n_rows: int, class_names: Sequence[str]) -> list[str]:
    """A title per row of coefficients: the class's name; scikit-learn fits two classes with one row,
    which votes for the second class against the first."""
    names = [short_name(str(name)) for name in class_names]
    if n_rows == 1 and len(names) == 2:
        return [f"{names[1]} vs {names[0]}"]
    if n_rows != len(names):
        raise ValueError(f"{n_rows} rows of coefficients for {len(names)} classes")
    return names


def coefficient_images(
    coef: np.ndarray, image_shape: Sequence[int], title: str, class_names: Sequence[str] | None = None
) -> Figure:
    """Each class's weights reshaped to the image: red pixels vote for the class, blue against; ten a
    row, titled by class (the row index when no names are given)."""
    coef = np.asarray(coef)
    height, width = image_shape
    if coef.ndim != 2 or coef.shape[1] != height * width:
        raise ValueError(f"expected coefficients shaped (classes, {height * width}), got {coef.shape}")
    names = class_names if class_names is not None else [str(index) for index in range(len(coef))]
    titles = coefficient_titles(len(coef), names)
    limit = float(np.abs(coef).max()) or 1.0
    nrows, ncols = _grid(len(coef), 10)
    aspect = width / height
    figure_width = max(4.0, 1.3 * ncols * min(2.0, max(0.5, aspect)))
    figure = Figure(figsize=(figure_width, 1.8 * nrows + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(coef):
            ax.imshow(coef[index].reshape(height, width), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(titles[index], **({} if len(titles[index]) <= 8 else {"fontsize": 8}))
    figure.suptitle(title)
    return figure

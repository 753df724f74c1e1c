"""Figures as pure functions: arrays in, a matplotlib ``Figure`` out, nothing written.

They use ``matplotlib.figure.Figure`` directly rather than pyplot, so no display, backend or global
figure state is involved and a figure is freed as soon as it is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return max(1, -(-n // ncols)), ncols


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
    figure = Figure(figsize=(1.2 * ncols, 1.35 * nrows + (0.4 if title else 0)))
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
    """Counts with actual classes as rows and predictions as columns, each cell annotated."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"expected a {len(labels)}x{len(labels)} matrix, got shape {matrix.shape}")
    figure = Figure(figsize=(5.2, 4.6))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for row, col in np.ndindex(matrix.shape):
        color = "white" if matrix[row, col] > threshold else "black"
        ax.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=7, color=color)
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


def coefficient_images(coef: np.ndarray, image_shape: Sequence[int], title: str) -> Figure:
    """Each class's weights reshaped to the image: red pixels vote for the class, blue against."""
    coef = np.asarray(coef)
    height, width = image_shape
    if coef.ndim != 2 or coef.shape[1] != height * width:
        raise ValueError(f"expected coefficients shaped (classes, {height * width}), got {coef.shape}")
    limit = float(np.abs(coef).max()) or 1.0
    figure = Figure(figsize=(1.3 * len(coef), 1.8))
    axes = np.atleast_1d(figure.subplots(1, len(coef)))
    for digit, ax in enumerate(axes):
        ax.imshow(coef[digit].reshape(height, width), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(digit))
        ax.set_axis_off()
    figure.suptitle(title)
    return figure

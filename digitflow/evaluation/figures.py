"""Figures as pure functions: arrays in, a matplotlib ``Figure`` out, nothing written.

They use ``matplotlib.figure.Figure`` directly rather than pyplot, so no display, backend or global
figure state is involved and a figure is freed as soon as it is dropped. Figures with one entry per class
grow with the number of classes and shorten long class names, so they stay legible from 2 classes to
several dozen (ten digits keep their usual size).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


# Grids of small pictures are drawn as one axes holding every tile, not an axes per tile: matplotlib lays
# out and measures each axes (ticks, title, tight box) even with its axis off, so 30 tiles cost about
# 0.3 s each time a figure is saved; one axes with 30 images and 30 texts costs a few milliseconds.
# Positions below are in inches: the axes spans the figure under the title, with limits set to its size.
TILE = 1.0  # inches: a picture's longer side
GAP = 0.2  # inches between tiles, and below each row
LINE = 0.16  # inches per caption line at 8 points
TITLE_BAND = 0.4  # inches above the grid for the figure's title
TITLE_CHAR = 0.1  # inches per character of that title, at least (12 points), so it fits the figure's width


def _tiles(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    ncols: int,
    title: str | None,
    min_width: float = 0.0,
    fontsize: float = 8,
    colors: Sequence[str] | None = None,
    **imshow: Any,
) -> Figure:
    """``images`` in rows of ``ncols``, each under its caption (in ``colors``, black by default), in one
    axes; ``imshow`` holds the pictures' ``cmap`` and, for one scale for all, ``vmin`` and ``vmax``.
    Everything lies inside the figure as made, so it is saved as it is, without a tight box (which
    would draw it twice)."""
    colors = colors or ["black"] * len(captions)
    nrows, ncols = _grid(max(len(images), 1), ncols)
    height, width = np.shape(images[0])[:2] if len(images) else (1, 1)
    scale = TILE / max(height, width)
    tile_w, tile_h = width * scale, height * scale
    lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    band = LINE * lines * fontsize / 8 + 0.06
    cell_w, cell_h = TILE + GAP, band + tile_h + GAP
    grid_w, grid_h = ncols * cell_w, nrows * cell_h
    top = TITLE_BAND if title else 0.0
    figure_w = max(grid_w, min_width, TITLE_CHAR * len(title) + 0.4 if title else 0.0)
    figure = Figure(figsize=(figure_w, grid_h + top))
    ax = figure.add_axes(((figure_w - grid_w) / 2 / figure_w, 0.0, grid_w / figure_w, grid_h / (grid_h + top)))
    ax.set_axis_off()
    for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
        row, col = divmod(index, ncols)
        left = col * cell_w + (cell_w - tile_w) / 2
        upper = row * cell_h + band
        extent = (left, left + tile_w, upper + tile_h, upper)
        ax.imshow(image, extent=extent, interpolation="nearest", **imshow)
        ax.text(left + tile_w / 2, upper - 0.04, caption, ha="center", va="bottom", fontsize=fontsize,
                color=colors[index], linespacing=1.1)  # fmt: skip
    ax.set_xlim(0, grid_w)
    ax.set_ylim(grid_h, 0)
    ax.set_aspect("auto")  # limits are inches and the axes is as many inches: a tile keeps its shape
    if title:
        figure.suptitle(title, y=1 - 0.12 / (grid_h + top), va="top")
    return figure


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    ncols: int = 10,
    title: str | None = None,
    title_colors: Sequence[str] | None = None,
) -> Figure:
    """A grid of grey images, each with a caption (a label, or 'pred 3 / true 8'); each image scaled to
    its own lightest and darkest pixel, as ``imshow`` does."""
    if len(images) != len(titles):
        raise ValueError(f"got {len(images)} images but {len(titles)} titles")
    min_width = 3.0 if title else 0.0
    return _tiles(images, titles, ncols, title, min_width, colors=title_colors, cmap="gray_r")


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
    fontsize = 10 if max(len(name) for name in titles) <= 8 else 8
    tiles = [row.reshape(height, width) for row in coef]
    return _tiles(tiles, titles, 10, title, 4.0, fontsize=fontsize, cmap="RdBu_r", vmin=-limit, vmax=limit)

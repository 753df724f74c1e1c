"""digitflow.evaluation.figures: arrays in, a Figure out with the expected axes and images; bad inputs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from digitflow.core.io import save_figure
from digitflow.evaluation.figures import coefficient_images, confusion_heatmap, image_grid, learning_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS = [str(d) for d in range(10)]


def images_drawn(figure: Figure) -> int:
    return sum(len(ax.images) for ax in figure.axes)


def history(epochs: int = 4) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "train_loss": 1 / epoch,
            "val_loss": 1.1 / epoch,
            "train_accuracy": 1 - 0.5 / epoch,
            "val_accuracy": 1 - 0.6 / epoch,
        }
    )


@pytest.mark.parametrize(("n", "ncols", "grid"), [(7, 3, (3, 3)), (30, 10, (3, 10)), (4, 10, (1, 4)), (0, 10, (1, 1))])
def test_image_grid_layout(n, ncols, grid):
    images = np.random.default_rng(0).integers(0, 17, size=(n, 8, 8))
    titles = [f"label {i}" for i in range(n)]
    figure = image_grid(images, titles, ncols=ncols, title="Training images")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == grid[0] * grid[1]
    assert images_drawn(figure) == n
    drawn_titles = [ax.get_title() for ax in figure.axes if ax.images]
    assert drawn_titles == titles
    if n:
        np.testing.assert_array_equal(figure.axes[n - 1].images[0].get_array(), images[n - 1])
    assert figure.get_suptitle() == "Training images"


def test_image_grid_title_colors():
    figure = image_grid(np.zeros((2, 8, 8)), ["a", "b"], title_colors=["firebrick", "navy"])
    assert [ax.title.get_color() for ax in figure.axes] == ["firebrick", "navy"]


def test_image_grid_refuses_mismatched_titles():
    with pytest.raises(ValueError, match="got 3 images but 2 titles"):
        image_grid(np.zeros((3, 8, 8)), ["a", "b"])


def test_confusion_heatmap_rows_are_actual():
    matrix = np.arange(100).reshape(10, 10)
    figure = confusion_heatmap(matrix, DIGITS, "test confusion")
    assert len(figure.axes) == 2  # the heatmap and its colorbar
    ax = figure.axes[0]
    assert len(ax.images) == 1
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "actual")
    assert ax.get_title() == "test confusion"
    # Each annotation sits at (x=column, y=row) and shows matrix[row, column].
    assert len(ax.texts) == 100
    for text in ax.texts:
        col, row = text.get_position()
        assert text.get_text() == str(matrix[int(row), int(col)])
    assert [t.get_text() for t in ax.get_xticklabels()] == DIGITS


def test_confusion_heatmap_all_zero_matrix():
    figure = confusion_heatmap(np.zeros((10, 10), dtype=int), DIGITS, "empty")
    assert {t.get_text() for t in figure.axes[0].texts} == {"0"}


@pytest.mark.parametrize("shape", [(10, 9), (9, 9), (100,)])
def test_confusion_heatmap_refuses_wrong_shape(shape):
    with pytest.raises(ValueError, match="expected a 10x10 matrix") as caught:
        confusion_heatmap(np.zeros(shape), DIGITS, "x")
    assert str(shape) in str(caught.value)


def test_learning_curves():
    frame = history(5)
    figure = learning_curves(frame, title="curves")
    assert len(figure.axes) == 2
    loss_ax, acc_ax = figure.axes
    assert loss_ax.get_ylabel() == "loss"
    assert acc_ax.get_ylabel() == "accuracy"
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"train", "val"}
        np.testing.assert_allclose(lines["val"].get_ydata(), frame[f"val_{metric}"])
        np.testing.assert_allclose(lines["train"].get_xdata(), frame["epoch"])
    assert figure.get_suptitle() == "curves"


def test_learning_curves_names_missing_columns():
    with pytest.raises(ValueError, match=r"\['train_accuracy', 'val_loss'\]"):
        learning_curves(history().drop(columns=["val_loss", "train_accuracy"]))


@pytest.mark.parametrize(("classes", "shape"), [(10, (8, 8)), (3, (28, 28)), (1, (2, 3))])
def test_coefficient_images(classes, shape):
    coef = np.random.default_rng(1).normal(size=(classes, shape[0] * shape[1]))
    figure = coefficient_images(coef, shape, "weights")
    assert len(figure.axes) == classes
    assert images_drawn(figure) == classes
    last = figure.axes[-1].images[0]
    np.testing.assert_array_equal(last.get_array(), coef[-1].reshape(shape))
    # One symmetric colour scale for every class, so red and blue mean the same everywhere.
    limit = np.abs(coef).max()
    assert {ax.images[0].get_clim() for ax in figure.axes} == {(-limit, limit)}
    assert [ax.get_title() for ax in figure.axes] == [str(d) for d in range(classes)]


@pytest.mark.parametrize(("coef_shape", "image_shape"), [((10, 63), (8, 8)), ((64,), (8, 8)), ((10, 64), (28, 28))])
def test_coefficient_images_refuses_wrong_shape(coef_shape, image_shape):
    with pytest.raises(ValueError, match="expected coefficients shaped"):
        coefficient_images(np.zeros(coef_shape), image_shape, "x")


def test_save_figure_writes_png_atomically(tmp_path: Path):
    target = tmp_path / "figures" / "confusion.png"
    save_figure(confusion_heatmap(np.eye(10, dtype=int), DIGITS, "x"), target)
    data = target.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100
    assert height > 100
    assert data.endswith(b"IEND\xaeB`\x82")
    assert [p.name for p in target.parent.iterdir()] == ["confusion.png"]

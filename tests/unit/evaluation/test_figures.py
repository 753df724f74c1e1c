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


# --- any number of named classes: legible at 2 and at 26 (issue 25) ----------------------------------

LETTERS = [f"letter_{chr(ord('A') + i)}" for i in range(26)]
LETTERS[5] = "a_rather_long_class_name_for_F"


def boxes_overlap(texts: list) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap (the figure must have been drawn)."""
    shown = [text for text in texts if text.get_text()]
    boxes = [text.get_window_extent() for text in shown]
    return [
        (shown[i].get_text(), shown[j].get_text())
        for i in range(len(boxes))
        for j in range(i + 1, len(boxes))
        if boxes[i].overlaps(boxes[j])
    ]


@pytest.mark.parametrize("names", [["circle", "cross"], DIGITS, LETTERS], ids=["2", "10", "26"])
def test_confusion_heatmap_labels_never_overlap(names):
    n = len(names)
    matrix = np.diag(np.full(n, 120)) + 1
    figure = confusion_heatmap(matrix, names, "PyTorch logistic regression: test set")
    figure.draw_without_rendering()  # runs the layout, as saving does
    (ax, _colorbar) = figure.axes
    assert boxes_overlap(ax.get_xticklabels()) == []
    assert boxes_overlap(ax.get_yticklabels()) == []
    shown = [label.get_text() for label in ax.get_xticklabels()]
    assert all(len(label) <= 14 for label in shown)  # long names shortened, with an ellipsis
    assert ("a_rather_long\u2026" in shown) == (n == 26)
    cell = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
    numbers = [text for text in ax.texts if text.get_text() == "121"]
    assert len(numbers) == n
    assert all(text.get_window_extent().width < cell for text in numbers)  # each fits its cell


@pytest.mark.parametrize(("names", "rows"), [(["circle", "cross"], 2), (["circle", "cross"], 1), (LETTERS, 26)])
def test_coefficient_images_are_titled_by_class_without_overlap(names, rows):
    coef = np.random.default_rng(0).normal(size=(rows, 12 * 10))
    figure = coefficient_images(coef, (12, 10), "scikit-learn LogisticRegression", names)
    figure.draw_without_rendering()  # runs the layout, as saving does
    titles = [ax.title for ax in figure.axes if ax.images]
    if rows == 1:  # scikit-learn fits two classes with one row: for the second, against the first
        assert [title.get_text() for title in titles] == ["cross vs circle"]
    else:
        assert [title.get_text() for title in titles][:2] == [name[:13] + "\u2026" if len(name) > 14 else name
                                                              for name in names[:2]]  # fmt: skip
    assert boxes_overlap([*titles, figure._suptitle]) == []


def test_coefficient_rows_must_match_the_classes():
    with pytest.raises(ValueError, match="3 rows of coefficients for 2 classes"):
        coefficient_images(np.zeros((3, 4)), (2, 2), "t", ["a", "b"])


def test_two_line_captions_stay_clear_of_the_title():
    captions = ["pred letter_Q\ntrue letter_O", "pred circle\ntrue cross"]
    figure = image_grid(np.zeros((2, 8, 8)), captions, title="scikit-learn LogisticRegression: misclassified")
    figure.draw_without_rendering()  # runs the layout, as saving does
    assert boxes_overlap([*(ax.title for ax in figure.axes), figure._suptitle]) == []

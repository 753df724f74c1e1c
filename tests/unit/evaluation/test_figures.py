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


def tiles(figure: Figure) -> tuple[list, list]:
    """The pictures and captions of a grid figure (one axes holds them all), in reading order."""
    (ax,) = figure.axes
    return list(ax.images), list(ax.texts)


def cell(image) -> tuple[float, float]:
    """The (column, row) position of a tile: its left and top edges, in the axes' units."""
    left, _right, _bottom, top = image.get_extent()
    return left, top


@pytest.mark.parametrize(("n", "ncols", "grid"), [(7, 3, (3, 3)), (30, 10, (3, 10)), (4, 10, (1, 4)), (0, 10, (1, 1))])
def test_image_grid_layout(n, ncols, grid):
    images = np.random.default_rng(0).integers(0, 17, size=(n, 8, 8))
    titles = [f"label {i}" for i in range(n)]
    figure = image_grid(images, titles, ncols=ncols, title="Training images")
    assert isinstance(figure, Figure)
    drawn, captions = tiles(figure)
    assert len(drawn) == n
    assert [caption.get_text() for caption in captions] == titles
    lefts = sorted({cell(image)[0] for image in drawn})
    tops = sorted({cell(image)[1] for image in drawn})
    assert (len(tops), len(lefts)) == (grid if n else (0, 0))
    if n:
        np.testing.assert_array_equal(drawn[n - 1].get_array(), images[n - 1])
        # Row by row, left to right, each caption centred over its own picture.
        assert [cell(image) for image in drawn] == sorted((cell(image) for image in drawn), key=lambda c: (c[1], c[0]))
        for image, caption in zip(drawn, captions, strict=True):
            left, right, _bottom, top = image.get_extent()
            x, y = caption.get_position()
            assert x == pytest.approx((left + right) / 2)
            assert y < top  # above it (rows grow downwards)
    assert figure.get_suptitle() == "Training images"


def test_image_grid_scales_each_picture_to_itself():
    faint, bold = np.full((8, 8), 1.0), np.full((8, 8), 16.0)
    faint[0, 0], bold[0, 0] = 0.0, 0.0
    drawn, _ = tiles(image_grid(np.stack([faint, bold]), ["faint", "bold"]))
    assert [image.get_clim() for image in drawn] == [(0.0, 1.0), (0.0, 16.0)]


def test_image_grid_title_colors():
    figure = image_grid(np.zeros((2, 8, 8)), ["a", "b"], title_colors=["firebrick", "navy"])
    assert [caption.get_color() for caption in tiles(figure)[1]] == ["firebrick", "navy"]


def test_grid_figures_keep_the_pictures_shape(tmp_path: Path):
    """A tile is drawn with the picture's own proportions (tall pictures stay tall) once saved."""
    figure = image_grid(np.zeros((3, 28, 14)), ["a", "b", "c"], title="tall")
    figure.draw_without_rendering()
    (image, *_) = tiles(figure)[0]
    box = image.get_window_extent()
    assert box.height / box.width == pytest.approx(2.0, rel=0.02)


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
    drawn, captions = tiles(figure)
    assert images_drawn(figure) == len(drawn) == classes
    np.testing.assert_array_equal(drawn[-1].get_array(), coef[-1].reshape(shape))
    # One symmetric colour scale for every class, so red and blue mean the same everywhere.
    limit = np.abs(coef).max()
    assert {image.get_clim() for image in drawn} == {(-limit, limit)}
    assert [caption.get_text() for caption in captions] == [str(d) for d in range(classes)]


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
    titles = tiles(figure)[1]
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
    drawn, captions = tiles(figure)
    assert boxes_overlap([*captions, figure._suptitle]) == []
    pictures = [image.get_window_extent() for image in drawn]
    assert not any(caption.get_window_extent().overlaps(box) for caption in captions for box in pictures)


LONG_TITLE = "scikit-learn LogisticRegression: misclassified"


@pytest.mark.parametrize(
    "make",
    [
        lambda: image_grid(np.zeros((1, 8, 8)), ["pred a_rather_long…\ntrue letter_Q"], title=LONG_TITLE),
        lambda: image_grid(np.zeros((30, 28, 28)), [f"label {i}" for i in range(30)], title="Training images"),
        lambda: coefficient_images(np.ones((2, 12 * 10)), (12, 10), "PyTorch logistic regression", LETTERS[:2]),
        lambda: coefficient_images(np.ones((26, 64)), (8, 8), "scikit-learn LogisticRegression", LETTERS),
    ],
    ids=["one picture, long title", "30 pictures", "2 classes", "26 classes"],
)
def test_grids_fit_their_figure_so_nothing_is_cut_without_a_tight_box(make):
    figure = make()
    figure.draw_without_rendering()
    inside = figure.bbox
    drawn, captions = tiles(figure)
    for artist in [*drawn, *captions, figure._suptitle]:
        box = artist.get_window_extent()
        assert inside.x0 <= box.x0, artist
        assert inside.y0 <= box.y0, artist
        assert box.x1 <= inside.x1, artist
        assert box.y1 <= inside.y1, artist

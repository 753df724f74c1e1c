"""The folder recipe (digitflow.models.image_recipes, ``data.dataset: folder``): grey, ink high, full
contrast, fitted to image_size; the same picture gives the same image however it is stored, and
``digitflow predict`` converts by the options in the model card, naming the class it predicts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from digitflow.core.errors import DigitflowError
from digitflow.models.card import ModelCard
from digitflow.models.image_recipes import NO_INK, convert
from digitflow.models.predict import convert_image, predicted_classes

SHAPE = (24, 24)


def ring(size: tuple[int, int] = (60, 40), centre: tuple[float, float] = (0.5, 0.5), seed: int = 0) -> Image.Image:
    """A dark ring on off-white paper, blurred and noisy, at ``centre`` (fractions of the picture)."""
    width, height = size
    paper = Image.new("L", size, 228)
    x, y, r = centre[0] * width, centre[1] * height, min(size) * 0.25
    ImageDraw.Draw(paper).ellipse([x - r, y - r, x + r, y + r], outline=40, width=3)
    noisy = np.asarray(paper.filter(ImageFilter.GaussianBlur(0.8)), float)
    noisy += np.random.default_rng(seed).normal(0, 3, noisy.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")


def folder(picture: Image.Image, **options: object) -> np.ndarray:
    return convert(picture, "folder", SHAPE, 255, options).pixels


def test_ink_is_high_the_background_zero_at_full_contrast_in_the_asked_size():
    pixels = folder(ring())
    assert pixels.shape == SHAPE
    assert pixels.dtype == np.float32
    assert pixels.min() == 0
    assert pixels.max() == pytest.approx(255)
    assert (pixels == 0).mean() > 0.5  # the paper is exactly zero


def test_the_whole_picture_keeps_its_aspect_and_where_the_shape_sits():
    wide = folder(ring((60, 30)))
    rows = np.flatnonzero(wide.any(axis=1))
    assert rows.min() >= 5  # 60x30 fits 24x12, padded above and below
    assert rows.max() <= 18
    left, right = folder(ring(centre=(0.3, 0.5))), folder(ring(centre=(0.7, 0.5)))
    columns = np.arange(SHAPE[1])
    assert (left.sum(axis=0) @ columns) / left.sum() < (right.sum(axis=0) @ columns) / right.sum()


def test_centre_ink_crops_and_centres_by_mass():
    left = folder(ring(centre=(0.3, 0.5)), centre_ink=True)
    right = folder(ring(centre=(0.7, 0.5)), centre_ink=True)
    for pixels in (left, right):
        rows, columns = np.indices(SHAPE)
        centre = ((rows * pixels).sum() / pixels.sum(), (columns * pixels).sum() / pixels.sum())
        assert centre == pytest.approx((12, 12), abs=1.0)
        assert np.flatnonzero(pixels.any(axis=0)).size <= round(24 * 5 / 7) + 1
    np.testing.assert_allclose(left, right, atol=40)


def test_light_ink_on_dark_gives_the_same_image_as_dark_on_light():
    dark_on_light = ring()
    light_on_dark = Image.eval(dark_on_light, lambda value: 255 - value)
    expected = folder(dark_on_light, ink="dark")
    np.testing.assert_allclose(folder(light_on_dark, ink="light"), expected, atol=1e-3)
    np.testing.assert_allclose(folder(light_on_dark), expected, atol=1e-3)  # auto finds it
    wrong_side = convert(light_on_dark, "folder", SHAPE, 255, {"ink": "dark"})
    assert wrong_side.problems == [NO_INK]  # nothing is darker than its dark background
    assert not wrong_side.pixels.any()


def test_colour_and_storage_do_not_change_the_image(tmp_path):
    grey = ring()
    blue_pen = Image.merge("RGB", [grey.point(lambda v: v * 0.9), grey.point(lambda v: v * 0.95), grey])
    expected = folder(grey)
    assert folder(grey.convert("RGB")).tolist() == expected.tolist()
    assert np.abs(folder(blue_pen) - expected).max() < 40
    transparent = grey.convert("RGBA")
    transparent.putalpha(255)
    assert folder(transparent).tolist() == expected.tolist()


def test_a_blank_picture_is_blank_with_the_problem_named():
    blank = Image.new("L", (40, 40), 200)
    conversion = convert(blank, "folder", SHAPE, 255, {"ink": "auto"})
    assert not conversion.pixels.any()
    assert conversion.problems == [NO_INK]
    # Ink on every border is no problem for a whole picture (a photo of a part fills it), only when centring.
    plus = Image.new("L", (40, 40), 230)
    ImageDraw.Draw(plus).line([(0, 20), (39, 20)], fill=20, width=3)
    ImageDraw.Draw(plus).line([(20, 0), (20, 39)], fill=20, width=3)
    assert convert(plus, "folder", SHAPE, 255, {"centre_ink": False}).problems == []
    (problem,) = convert(plus, "folder", SHAPE, 255, {"centre_ink": True}).problems
    assert problem.startswith("the ink touches every border")


def test_predict_converts_by_the_card_and_names_the_class():
    card = ModelCard.from_dict(
        {
            "dataset": "folder",
            "image_shape": [24, 24],
            "pixel_max": 255,
            "image_recipe": "folder",
            "recipe_options": {"ink": "dark", "centre_ink": True},
            "class_names": ["circle", "cross", "square"],
        }
    )
    np.testing.assert_array_equal(convert_image(ring(), card).pixels, folder(ring(), ink="dark", centre_ink=True))
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert predicted_classes(proba, card) == [("cross", 0.7), ("circle", 0.5)]
    with pytest.raises(DigitflowError, match="answers 10 probabilities per image, its card names 3 classes"):
        predicted_classes(np.full((1, 10), 0.1), card)


def test_a_card_written_before_class_names_is_the_ten_digits():
    card = ModelCard.from_dict({"dataset": "digits", "image_shape": [8, 8], "pixel_max": 16})
    assert card.class_names == tuple(str(digit) for digit in range(10))
    assert (card.image_recipe, card.recipe_options) == ("uci-digits", {})

"""digitflow.models.predict: image files as users have them become the model's rows, and a models/ folder
becomes a predictor, with one clear message for what cannot be read."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter
from sklearn.datasets import load_digits

from digitflow.core import paths
from digitflow.core.errors import DigitflowError, InputError
from digitflow.core.params import TrainSklearnParams, TrainTorchParams
from digitflow.data.datasets import DatasetMeta
from digitflow.models import sklearn_model, torch_model
from digitflow.models.card import ModelCard
from digitflow.models.folder import write_model_dir
from digitflow.models.predict import convert_files, local_predictor, pixel_rows
from tests.conftest import PROJECT_ROOT

DIGITS = ModelCard("digits", (8, 8), 16, "uci-digits")
MNIST = ModelCard("mnist", (28, 28), 255, "mnist")
DIGITS_META = DatasetMeta("digits", (8, 8), 1797, 16, None, "uci-digits")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: the dataset's own images (0..16, ink high) and labels."""
    images, labels = load_digits(return_X_y=True)
    return images.reshape(-1, 8, 8), labels


def as_grey(image: np.ndarray, pixel_max: int) -> Image.Image:
    """A dataset image as an 8-bit greyscale file holds it: 0..pixel_max scaled to 0..255."""
    return Image.fromarray(np.round(image * 255.0 / pixel_max).astype(np.uint8), mode="L")


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A '7' in dark ink on off-white paper, blurred and noisy, at an odd size: what a phone gives."""
    width, height = size
    rng = np.random.default_rng(seed)
    paper = Image.new("RGB", size, (236, 232, 221))
    draw = ImageDraw.Draw(paper)
    stroke = max(2, width // 9)
    draw.line([(width * 0.25, height * 0.2), (width * 0.75, height * 0.2)], fill=(40, 38, 52), width=stroke)
    draw.line([(width * 0.75, height * 0.2), (width * 0.4, height * 0.85)], fill=(40, 38, 52), width=stroke)
    blurred = np.asarray(paper.filter(ImageFilter.GaussianBlur(max(0.5, width / 40))), dtype=np.float64)
    noisy = np.clip(blurred + rng.normal(0, 6, blurred.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, mode="RGB")


def read_images(files: list[Path], card: ModelCard) -> np.ndarray:
    """The model's input rows for image files, as `digitflow predict` makes them."""
    return pixel_rows(convert_files(files, card))


def test_images_in_the_datasets_format_pass_through_unchanged(tmp_path: Path, digits) -> None:
    images, _ = digits
    files = []
    for index in range(5):
        files.append(tmp_path / f"digit{index}.png")
        as_grey(images[index], 16).save(files[-1])
    rows = read_images(files, DIGITS)
    assert rows.shape == (5, 64)
    assert rows.dtype == np.float32
    # 8-bit grey holds 0..16 to within half a grey level.
    np.testing.assert_allclose(rows, images[:5].reshape(5, 64), atol=0.5 * 16 / 255)


def test_a_28x28_image_passes_through_exactly(tmp_path: Path) -> None:
    # An MNIST-like digit: a bright stroke on a black background, every grey level 0..255.
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 12:16] = np.linspace(0, 255, 20 * 4).astype(np.uint8).reshape(20, 4)
    image[4:7, 6:22] = 255
    Image.fromarray(image, mode="L").save(tmp_path / "mnist.png")
    np.testing.assert_array_equal(read_images([tmp_path / "mnist.png"], MNIST), image.reshape(1, 784))


@pytest.mark.parametrize("card", [DIGITS, MNIST], ids=["digits", "mnist"])
def test_photos_in_any_mode_and_size_become_rows_with_ink_high(tmp_path: Path, card: ModelCard) -> None:
    original = photo((61, 83), seed=0)
    files = {
        "rgb.png": original,
        "grey.png": original.convert("L"),
        "palette.png": original.convert("P", palette=Image.Palette.ADAPTIVE),
        "opaque.png": original.convert("RGBA"),
        "photo.jpg": original,
        "wide.jpeg": photo((203, 97), seed=1),
        "tiny.png": photo((9, 13), seed=2).convert("L"),
    }
    for name, image in files.items():
        image.save(tmp_path / name)

    rows = read_images([tmp_path / name for name in files], card)

    assert rows.shape == (len(files), card.n_features)
    assert rows.dtype == np.float32
    assert rows.min() >= 0
    assert rows.max() <= card.pixel_max
    for name, row in zip(files, rows, strict=True):
        # Ink high, paper (most of the picture) low, wherever the conversion puts the digit.
        assert np.median(row) < 0.2 * card.pixel_max, name
        assert row.max() > 0.5 * card.pixel_max, name
    # The same picture in another mode or format gives (nearly) the same row.
    for row in rows[1:5]:
        np.testing.assert_allclose(row, rows[0], atol=0.06 * card.pixel_max)


def test_one_message_names_every_file_that_cannot_be_read(tmp_path: Path, digits) -> None:
    good = tmp_path / "good.png"
    as_grey(digits[0][0], 16).save(good)
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    truncated = tmp_path / "truncated.jpg"
    photo((64, 64), seed=3).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    missing = tmp_path / "missing.png"
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")

    with pytest.raises(DigitflowError) as caught:
        read_images([good, text, truncated, missing, empty], DIGITS)

    message = str(caught.value)
    assert message.startswith("cannot read these images (PNG or JPEG expected):")
    for bad in (text, truncated, missing, empty):
        assert sum(str(bad) in line for line in message.splitlines()) == 1, (bad, message)
    assert str(good) not in message


# --- models/ folders --------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with the project's dvc.yaml (where the repair advice comes from)."""
    shutil.copy(PROJECT_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def fitted(digits) -> dict[str, tuple[object, tuple[np.ndarray, np.ndarray], partial]]:
    """Both models fitted in-process on 300 digits: (model, coefficients, save function)."""
    images, labels = digits
    features, labels = images.reshape(-1, 64)[:300].astype(np.float32), labels[:300]
    pipeline = sklearn_model.build_model(TrainSklearnParams(max_iter=100)).fit(features, labels)
    params = TrainTorchParams(epochs=3, batch_size=64, lr=0.05)
    net = torch_model.train_logistic_regression(
        features, labels, features[:50], labels[:50], params, torch.device("cpu"), progress=False
    ).model
    return {
        "sklearn": (pipeline, sklearn_model.coefficients(pipeline), partial(sklearn_model.save_model, pipeline)),
        "torch": (net, torch_model.coefficients(net), partial(torch_model.save_model, net)),
    }


def write_models_dir(fitted, model_name: str) -> object:
    """``models/<model_name>/`` as the training stage writes it; the fitted model."""
    model, coefficients, save = fitted[model_name]
    write_model_dir(model_name, save, coefficients, DIGITS_META)
    return model


def expected_proba(model_name: str, model: object, rows: np.ndarray) -> np.ndarray:
    if model_name == "sklearn":
        return model.predict_proba(rows)
    return torch_model.predict_proba(model, rows)


@pytest.mark.parametrize("model_name", ["sklearn", "torch"])
def test_local_predictor_reads_the_models_folder(project: Path, fitted, digits, model_name: str) -> None:
    model = write_models_dir(fitted, model_name)

    predict, card = local_predictor(model_name)

    assert card == DIGITS
    rows = digits[0].reshape(-1, 64)[1000:1020].astype(np.float32)
    proba = predict(rows)
    assert proba.shape == (20, 10)
    np.testing.assert_allclose(proba, expected_proba(model_name, model, rows), rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("model_name", ["sklearn", "torch"])
def test_image_files_predict_like_the_pixels_they_hold(project: Path, fitted, digits, model_name: str) -> None:
    model = write_models_dir(fitted, model_name)
    images = digits[0][1000:1010]
    files = []
    for index, image in enumerate(images):
        files.append(project / f"{index}.png")
        as_grey(image, 16).save(files[-1])
    predict, card = local_predictor(model_name)
    predicted = predict(read_images(files, card)).argmax(axis=1)
    expected = expected_proba(model_name, model, images.reshape(10, 64).astype(np.float32)).argmax(axis=1)
    np.testing.assert_array_equal(predicted, expected)


@pytest.mark.parametrize(("model_name", "stage"), [("sklearn", "train_sklearn"), ("torch", "train_torch")])
def test_a_missing_card_names_the_repair(project: Path, fitted, model_name: str, stage: str) -> None:
    write_models_dir(fitted, model_name)
    paths.model_card_file(model_name).unlink()
    with pytest.raises(InputError) as caught:
        local_predictor(model_name)
    assert str(caught.value) == (
        f"{paths.model_card_file(model_name)} is missing; restore it with `dvc checkout --force {stage}`, "
        f"or rebuild it with `dvc repro -f -s {stage}`"
    )


@pytest.mark.parametrize("model_name", ["sklearn", "torch"])
def test_a_damaged_model_file_names_the_file_and_the_repair(project: Path, fitted, model_name: str) -> None:
    write_models_dir(fitted, model_name)
    paths.model_file(model_name).write_bytes(b"half a model")
    with pytest.raises(InputError, match=rf"{paths.model_file(model_name)} is damaged .*dvc checkout --force train_"):
        local_predictor(model_name)

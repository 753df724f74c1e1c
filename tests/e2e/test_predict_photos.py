"""Issue 'digitflow predict on real photos': pictures converted by their dataset's recipe are read right.

The models are trained in this process by ``digitflow.testing_photos.train_models``: the library functions
the training stages call, with params.yaml's settings, written by the stages' own ``write_model_dir`` (model
card included); about 25 s for MNIST where an MNIST ``dvc repro`` costs 70 s, and the predictions go
through the real ``digitflow predict`` command (MNIST) or its library functions (digits, 800 pictures).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT, run
from tests.support.photos import LabelledImages, drawn_large, photo, photo_styles, train_models
from tests.support.readme import readme_command

MODELS = ("sklearn", "torch")
N_PHOTOS = 200
LINE = re.compile(r"(?P<file>.+): (?P<digit>\d) \(probability (?P<probability>\d\.\d{3})\)")


def predicted_digits(stdout: str) -> dict[str, int]:
    found = [LINE.fullmatch(line) for line in stdout.strip().splitlines()]
    assert all(found), stdout
    return {match["file"]: int(match["digit"]) for match in found if match}


# --- MNIST: photos of test images on paper, a blank page, a grey wall ----------------------------------


@pytest.fixture(scope="module")
def mnist_project(tmp_path_factory: pytest.TempPathFactory, shared_mnist: Path) -> tuple[Path, LabelledImages]:
    project = tmp_path_factory.mktemp("photos") / "project"
    project.mkdir()
    return project, train_models(project, "mnist", PROJECT_ROOT / "params.yaml", shared_mnist)


@pytest.fixture(scope="module")
def photo_files(mnist_project: tuple[Path, LabelledImages]) -> dict[str, dict]:
    """200 photos of MNIST test images in every style of ``photo_styles`` (a JPEG every fifth), a blank
    page and a photo of a grey wall; per file its label and style."""
    project, test = mnist_project
    folder = project / "photos"
    folder.mkdir()
    rng = np.random.default_rng(20)
    rows = rng.choice(len(test.labels), N_PHOTOS, replace=False)
    files: dict[str, dict] = {}
    for number, (row, style) in enumerate(zip(rows, photo_styles(N_PHOTOS, seed=20), strict=True)):
        name = f"photos/photo{number:03d}.{'jpg' if number % 5 == 4 else 'png'}"
        photo(test.images[row], test.pixel_max, style, rng).save(project / name)
        files[name] = {"label": int(test.labels[row]), "style": style}
    Image.new("RGB", (240, 180), (246, 244, 238)).save(project / "photos/blank.png")  # a blank page
    wall = np.clip(rng.normal(131, 6, (300, 400, 3)), 0, 255).astype(np.uint8)  # grey surface, sensor noise
    Image.fromarray(wall).save(project / "photos/grey_wall.jpg", quality=90)
    files["photos/blank.png"] = files["photos/grey_wall.jpg"] = {"label": None, "style": None}
    return files


@pytest.fixture(scope="module")
def predictions(mnist_project: tuple[Path, LabelledImages], photo_files: dict[str, dict]) -> dict[str, object]:
    """`digitflow predict` on every file, once per model: torch by the README's command as written (the
    default model, and --show), sklearn with the files listed."""
    project, _ = mnist_project
    return {
        "torch": run(project, "bash", "-c", readme_command("digitflow predict photos/* --show seen")),
        "sklearn": run(project, "digitflow", "predict", *photo_files, "--model", "sklearn"),
    }


@pytest.mark.mnist
@pytest.mark.parametrize("model", MODELS)
def test_photos_of_mnist_test_digits_are_read_right(
    photo_files: dict[str, dict], predictions: dict, model: str
) -> None:
    """At least 70 % right overall and in each part: paper 211 and 247, a digit filling 30 % and 90 % of
    the frame, RGB and greyscale, JPEG (measured: 91-93 % overall, as on the same images clean)."""
    digits = predicted_digits(predictions[model].stdout)
    photos = {name: info for name, info in photo_files.items() if info["label"] is not None}
    right = {name: digits[name] == info["label"] for name, info in photos.items()}
    assert np.mean(list(right.values())) >= 0.7
    parts = {
        "paper 211": lambda name, style: style.paper == 211,
        "paper 247": lambda name, style: style.paper == 247,
        "fill 30 %": lambda name, style: style.fill == 0.3,
        "fill 90 %": lambda name, style: style.fill == 0.9,
        "RGB": lambda name, style: style.mode == "RGB",
        "L": lambda name, style: style.mode == "L",
        "blur 2": lambda name, style: style.blur >= 0.9 * min(style.size) / 100,
        "noise 9": lambda name, style: style.noise == 9,
        "JPEG": lambda name, style: name.endswith(".jpg"),
    }
    for part, chosen in parts.items():
        members = [right[name] for name, info in photos.items() if chosen(name, info["style"])]
        assert len(members) >= 20, part
        assert np.mean(members) >= 0.7, f"{model}, {part}: {np.mean(members):.2f} of {len(members)}"


@pytest.mark.mnist
def test_blank_page_and_grey_wall_get_a_warning_naming_them(photo_files: dict[str, dict], predictions: dict) -> None:
    """The two pictures with no digit are still answered, with a warning on stderr naming each; no photo
    of a digit gets one."""
    for model, result in predictions.items():
        warned = re.findall(r"warning: (\S+) does not look like a digit on plain paper: no ink found", result.stderr)
        assert sorted(warned) == ["photos/blank.png", "photos/grey_wall.jpg"], (model, result.stderr)
        assert result.stderr.count("warning:") == 2, result.stderr
        assert set(predicted_digits(result.stdout)) == set(photo_files)


@pytest.mark.mnist
def test_show_draws_each_picture_beside_what_the_model_saw(
    mnist_project: tuple[Path, LabelledImages], photo_files: dict[str, dict], predictions: dict
) -> None:
    project, _ = mnist_project
    assert f"what the model saw: {len(photo_files)} PNG files in seen" in predictions["torch"].stderr
    written = sorted(path.name for path in (project / "seen").iterdir())
    assert written == sorted(f"{Path(name).stem}_seen.png" for name in photo_files)
    with Image.open(project / "seen/photo000_seen.png") as view:
        assert view.format == "PNG"
        assert view.width > view.height > 200  # two pictures side by side, large enough to see
    assert not (project / "seen_sklearn").exists()


@pytest.mark.mnist
def test_an_mnist_image_passes_unchanged_and_the_photo_benchmark_runs(
    mnist_project: tuple[Path, LabelledImages],
) -> None:
    """A 28x28 MNIST test image is the model's input as it is; ``benchmarks/photos.py`` measures these
    models (on 40 photos here) and prints every figure."""
    from benchmarks.photos import markdown, measure
    from digitflow.models.card import ModelCard
    from digitflow.models.predict import convert_image

    project, test = mnist_project
    card = ModelCard.from_dict(json.loads((project / "models/torch/model_card.json").read_text()))
    assert card == ModelCard("mnist", (28, 28), 255, "mnist")
    for image in test.images[:20]:
        np.testing.assert_array_equal(convert_image(Image.fromarray(image), card).pixels, image)
    results = measure(project, test, count=40, seed=1)
    for model in MODELS:
        figures = results["models"][model]
        assert 0.9 <= figures["clean_test_accuracy"] <= 0.95
        assert figures["photo_accuracy"] >= 0.7 > figures["plain_resize_accuracy"]
        assert {"paper 211", "fill 30%", "fill 90%", "blur 2", "noise 9", "RGB", "L", "JPEG"} <= set(figures["parts"])
    table = markdown(results, "mnist")
    assert "| photos, the dataset's recipe |" in table
    assert "| photos: fill 90% |" in table


# --- digits: test images drawn large, through the 8x8 recipe ----------------------------------------------


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LabelledImages]:
    project = tmp_path_factory.mktemp("digits-photos")
    return project, train_models(project, "digits", PROJECT_ROOT / "params.yaml")


def enlarged(image: np.ndarray, pixel_max: int) -> Image.Image:
    """Each of the 64 cells drawn as a 25x25 square as dark as its value, on light paper, RGB."""
    grey = np.round(235 - 205 * image.astype(np.float32) / pixel_max).astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((200, 200), Image.Resampling.NEAREST).convert("RGB")


@pytest.mark.parametrize(("drawing", "at_least"), [("squares", 0.95), ("bicubic", 0.93)])
def test_digits_drawn_large_get_the_original_prediction(
    digits_project: tuple[Path, LabelledImages],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    drawing: str,
    at_least: float,
) -> None:
    """The whole digits test set drawn large on paper (200x200, dark ink) and converted by the 8x8 recipe
    gets the prediction of the original image: squares 99 %, smooth bicubic 95 % (measured). Bicubic loses
    more in the drawing itself: averaging its 200x200 back to 8x8 with the paper known already changes
    4.6 % of the answers, as its overshoot at each edge is clipped to paper or full ink."""
    from digitflow.models.predict import convert_files, local_predictor, pixel_rows

    project, test = digits_project
    files = []
    for number, image in enumerate(test.images):
        picture = enlarged(image, test.pixel_max) if drawing == "squares" else drawn_large(image, test.pixel_max)
        picture.save(tmp_path / f"{number}.png")
        files.append(tmp_path / f"{number}.png")
    monkeypatch.chdir(project)
    loaded = {model: local_predictor(model) for model in MODELS}
    cards = [card for _, card in loaded.values()]
    assert cards[0] == cards[1]  # both models' cards are the same
    card = cards[0]
    assert card.image_recipe == "uci-digits"
    rows = pixel_rows(convert_files(files, card))
    for model, (predictor, _) in loaded.items():
        original = predictor(test.images.reshape(len(test.images), -1).astype(np.float32)).argmax(axis=1)
        converted = predictor(rows).argmax(axis=1)
        assert (converted == original).mean() >= at_least, f"{model}: {(converted == original).mean():.3f}"


def test_a_card_written_before_the_recipe_was_recorded_gets_its_datasets() -> None:
    from digitflow.core.errors import DigitflowError
    from digitflow.models.card import ModelCard

    old = {"dataset": "digits", "image_shape": [8, 8], "pixel_max": 16}
    assert ModelCard.from_dict(old).image_recipe == "uci-digits"
    assert ModelCard.from_dict({**old, "dataset": "mnist", "image_shape": [28, 28]}).image_recipe == "mnist"
    assert ModelCard.from_dict({**old, "image_recipe": "mnist"}).image_recipe == "mnist"
    with pytest.raises(DigitflowError, match=r"image recipe 'folder-v9'.*update digitflow"):
        ModelCard.from_dict({**old, "image_recipe": "folder-v9"})


def test_a_picture_in_the_datasets_own_format_passes_unchanged(digits_project: tuple[Path, LabelledImages]) -> None:
    """An 8x8 PNG of digits' values (ink light on black) is the model's input as it is."""
    from digitflow.models.card import ModelCard
    from digitflow.models.predict import convert_image

    _, test = digits_project
    card = ModelCard("digits", (8, 8), 16, "uci-digits")
    for image in test.images[:50]:
        grey = Image.fromarray(np.round(image.astype(np.float32) * 255 / 16).astype(np.uint8), mode="L")
        conversion = convert_image(grey, card)
        np.testing.assert_allclose(conversion.pixels, image, atol=16 / 255 / 2 + 1e-6)
        assert conversion.problems == []


def test_odd_files_convert_like_plain_ones(tmp_path: Path) -> None:
    """A drawing app's transparent PNG, a phone's JPEG stored sideways with an EXIF rotation and a 16-bit
    scan convert like the plain picture; pictures of 1 or 2 pixels get the no-ink warning, not an error."""
    from digitflow.models.card import ModelCard
    from digitflow.models.predict import convert_files

    card = ModelCard("mnist", (28, 28), 255, "mnist")
    style = photo_styles(1, seed=3)[0]
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a plain 1
    plain = photo(digit, 255, dataclasses.replace(style, mode="L", noise=0.0), np.random.default_rng(0))
    plain.save(tmp_path / "plain.png")
    transparent = Image.new("RGBA", plain.size, (0, 0, 0, 0))
    transparent.putalpha(Image.eval(plain, lambda level: 255 - level))  # black ink, as dark as the photo's
    transparent.save(tmp_path / "transparent.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    plain.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.png", exif=exif.tobytes())
    Image.fromarray(np.asarray(plain).astype(np.uint16) * 257).save(tmp_path / "scan16.png")
    for size in ((1, 1), (2, 2)):
        Image.new("L", size, 128).save(tmp_path / f"{size[0]}x{size[1]}.png")
    names = ["plain.png", "transparent.png", "sideways.png", "scan16.png", "1x1.png", "2x2.png"]
    converted = dict(zip(names, convert_files([tmp_path / name for name in names], card), strict=True))
    assert converted["plain.png"].problems == []
    for name in ("transparent.png", "sideways.png", "scan16.png"):
        assert converted[name].problems == [], name
        np.testing.assert_allclose(converted[name].pixels, converted["plain.png"].pixels, atol=12, err_msg=name)
    for name in ("1x1.png", "2x2.png"):
        assert converted[name].problems[0].startswith("no ink found"), name

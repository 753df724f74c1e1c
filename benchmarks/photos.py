"""Photo benchmark: both models on realistic photos of test digits, beside their clean test accuracy.

    python benchmarks/photos.py                  # 2,000 MNIST photos and the 414 digits test images, ~2.5 min
    python benchmarks/photos.py --count 300      # fewer MNIST photos

For MNIST, then digits, both models are trained in this process as the pipeline's stages train them
(``train_models`` of ``digitflow/testing_photos.py``: the stages' library functions, params.yaml's
settings) into a temporary project. ``--count`` test images (at most the whole test set) become photos in
the mix of ``photo_styles`` (paper grey 211-247, the digit filling 30-90 % of the frame, sizes 96x96 to
640x480, blur, sensor noise, uneven light, RGB and greyscale, every fifth a JPEG), saved as files and read
the way ``digitflow predict`` reads them (``convert_files`` with the model card's recipe). Printed per
dataset: each model's accuracy on the clean test set and on the photographed images clean, on the photos,
on the photos converted as before issue 20 (plain area resize, inverted), and on the photos of each paper
level, fill, blur, noise level and mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_bench import log  # noqa: E402
from tests.support.photos import LabelledImages, PhotoStyle, photo, photo_styles, train_models  # noqa: E402

DEFAULT_MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
MODELS = ("sklearn", "torch")


def plain_resize(file: Path, image_shape: tuple[int, int], pixel_max: int) -> np.ndarray:
    """How ``digitflow predict`` converted a picture before issue 20: greyscale, area resize to the model's
    shape, inverted when the border is light, scaled to the pixel range."""
    from PIL import Image

    with Image.open(file) as image:
        small = np.asarray(image.convert("L").resize(image_shape[::-1], Image.Resampling.BOX), dtype=np.float64)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
    return (255.0 - small if border.mean() > 127.5 else small) * pixel_max / 255.0


def write_photos(
    folder: Path, test: LabelledImages, count: int, seed: int
) -> tuple[list[Path], np.ndarray, list[PhotoStyle]]:
    """Photos of ``count`` test images (at most all of them), a JPEG every fifth; their files, test-set
    rows and styles."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(test.labels), min(count, len(test.labels)), replace=False)
    styles = photo_styles(len(rows), seed=seed)
    files = []
    for number, (row, style) in enumerate(zip(rows, styles, strict=True)):
        file = folder / f"photo{number:05d}.{'jpg' if number % 5 == 4 else 'png'}"
        photo(test.images[row], test.pixel_max, style, rng).save(file)
        files.append(file)
    return files, rows, styles


def parts(files: list[Path], styles: list[PhotoStyle]) -> dict[str, np.ndarray]:
    """Boolean masks of the photos by paper level, fill, blur, noise, mode and file type."""

    def mask(chosen: Any) -> np.ndarray:
        return np.array([chosen(file, style) for file, style in zip(files, styles, strict=True)])

    masks: dict[str, np.ndarray] = {}
    for paper in sorted({style.paper for style in styles}):
        masks[f"paper {paper:.0f}"] = mask(lambda f, s, p=paper: s.paper == p)
    for fill in sorted({style.fill for style in styles}):
        masks[f"fill {fill:.0%}"] = mask(lambda f, s, v=fill: s.fill == v)
    for blur in (0, 1, 2):  # photo_styles' blur levels, in pixels of a 200x200 photo
        masks[f"blur {blur}"] = mask(lambda f, s, b=blur: abs(s.blur - b * min(s.size) / 200) < 1e-9)
    for noise in sorted({style.noise for style in styles}):
        masks[f"noise {noise:g}"] = mask(lambda f, s, n=noise: s.noise == n)
    for mode in ("RGB", "L"):
        masks[mode] = mask(lambda f, s, m=mode: s.mode == m)
    masks["JPEG"] = mask(lambda f, s: f.suffix == ".jpg")
    return masks


def measure(project: Path, test: LabelledImages, count: int, seed: int = 0) -> dict[str, Any]:
    """Accuracy of the models in ``project/models`` on the clean test set and on ``count`` photos."""
    from digitflow.models.predict import convert_files, local_predictor, pixel_rows

    started_in = Path.cwd()
    os.chdir(project)  # models/ is found relative to the project, as by the CLI
    try:
        with tempfile.TemporaryDirectory(prefix="photos-", dir=project) as folder:
            files, rows, styles = write_photos(Path(folder), test, count, seed)
            labels = test.labels[rows]
            results: dict[str, Any] = {"photos": len(files), "test_images": len(test.labels), "models": {}}
            for model in MODELS:
                predictor, card = local_predictor(model)
                started = time.perf_counter()
                recipe = predictor(pixel_rows(convert_files(files, card))).argmax(axis=1) == labels
                seconds = time.perf_counter() - started
                before = np.stack([plain_resize(file, card.image_shape, card.pixel_max).ravel() for file in files])
                clean = predictor(test.images.reshape(len(test.images), -1).astype(np.float32)).argmax(axis=1)
                results["models"][model] = {
                    "clean_test_accuracy": float((clean == test.labels).mean()),
                    "clean_accuracy_photographed": float((clean[rows] == labels).mean()),
                    "photo_accuracy": float(recipe.mean()),
                    "plain_resize_accuracy": float(
                        (predictor(before.astype(np.float32)).argmax(axis=1) == labels).mean()
                    ),
                    "ms_per_photo": round(1000 * seconds / len(files), 2),
                    "parts": {name: float(recipe[chosen].mean()) for name, chosen in parts(files, styles).items()},
                }
                log(f"{model}: photos {recipe.mean():.4f}, clean {(clean == test.labels).mean():.4f}")
    finally:
        os.chdir(started_in)
    return results


def markdown(results: dict[str, Any], dataset: str) -> str:
    models = results["models"]
    lines = [
        f"| {dataset}: accuracy ({results['photos']:,} photos) | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]

    def row(label: str, values: list[float]) -> None:
        lines.append(f"| {label} | " + " | ".join(f"{value:.1%}" for value in values) + " |")

    row(f"clean test set ({results['test_images']:,} images)", [m["clean_test_accuracy"] for m in models.values()])
    row("the photographed test images, clean", [m["clean_accuracy_photographed"] for m in models.values()])
    row("photos, the dataset's recipe", [m["photo_accuracy"] for m in models.values()])
    row("photos, plain resize (before issue 20)", [m["plain_resize_accuracy"] for m in models.values()])
    for part in next(iter(models.values()))["parts"]:
        row(f"photos: {part}", [m["parts"][part] for m in models.values()])
    lines.append(
        "| conversion, ms per photo | " + " | ".join(f"{m['ms_per_photo']:.1f}" for m in models.values()) + " |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="photos to make (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="which test images and styles (default %(default)s)")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR, help="folder with the 4 MNIST .gz files")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    results = {}
    for dataset in ("mnist", "digits"):
        with tempfile.TemporaryDirectory(prefix=f"digitflow-photos-{dataset}-") as tmp:
            started = time.perf_counter()
            test = train_models(Path(tmp), dataset, ROOT / "params.yaml", args.mnist_dir)
            log(f"both {dataset} models trained in {time.perf_counter() - started:.1f} s")
            results[dataset] = measure(Path(tmp), test, args.count, args.seed)
        print(markdown(results[dataset], dataset))
    return results


if __name__ == "__main__":
    main()

"""Issue 'a model you can use', end to end: raw pixels in, probabilities out, for both logged models;
the registry and @champion; `digitflow serve` over real HTTP; `digitflow predict` on image files."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import copy_project, pipeline_env, run
from tests.support.project import set_params
from tests.support.readme import readme_command

pytestmark = pytest.mark.e2e
MODELS = ("sklearn", "torch")


@pytest.fixture(scope="module")
def project(reproduced_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's reproduced digits project, for this module's promotions and predictions."""
    return copy_project(reproduced_digits, tmp_path_factory.mktemp("contract") / "project")


def client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def raw_test_set(project: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test set as a user has it: raw pixels (0..16), straight from the preprocessed matrix."""
    features = np.load(project / "data/processed/features.npy")
    with np.load(project / "data/split/indices.npz") as split:
        rows = split["test"]
    return features[rows], np.load(project / "data/processed/labels.npy")[rows]


def evaluate_predictions(project: Path, model: str) -> pd.DataFrame:
    return pd.read_csv(project / f"reports/evaluation/predictions_{model}.csv", index_col="test_index")


def test_preprocess_writes_raw_pixels_only(project: Path) -> None:
    features, _ = raw_test_set(project)
    assert features.dtype == np.float32
    assert features.min() == 0
    assert features.max() == 16
    assert sorted(p.name for p in (project / "data/processed").iterdir()) == ["features.npy", "labels.npy", "meta.json"]


@pytest.mark.parametrize("model", MODELS)
def test_registered_pyfunc_reproduces_evaluate_from_raw_pixels(
    project: Path, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, labels = raw_test_set(project)
    versions = client(project).search_model_versions(f"name = 'digitflow-{model}'")
    assert [str(v.version) for v in versions] == ["1"]
    # The version carries the run's test metrics.
    metrics = json.loads((project / "metrics/evaluate.json").read_text())[model]
    assert float(versions[0].tags["test_accuracy"]) == pytest.approx(metrics["test_accuracy"])
    # `models:/` URIs resolve through the tracking URI; monkeypatch puts the environment back afterwards
    # (mlflow.set_tracking_uri would leave MLFLOW_TRACKING_URI set for every later test's subprocesses).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    pyfunc = mlflow.pyfunc.load_model(f"models:/digitflow-{model}/1")
    proba = np.asarray(pyfunc.predict(features))
    assert proba.shape == (len(features), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    expected = evaluate_predictions(project, model)
    np.testing.assert_array_equal(proba.argmax(axis=1), expected["predicted"].to_numpy())
    np.testing.assert_allclose(proba, expected.filter(like="prob_").to_numpy(), atol=1e-6)
    # The signature and the input example show raw pixels.
    info = pyfunc.metadata
    assert info.get_input_schema().inputs[0].shape == (-1, 64)
    assert info.metadata["pixel_max"] == 16
    assert info.metadata["image_recipe"] == "uci-digits"  # how `digitflow predict --source champion` converts
    assert (labels == expected["actual"].to_numpy()).all()


def digitflow(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(project, "digitflow", *args, check=check)


def readme(project: Path, start: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The README command starting with ``start``, exactly as written, through the shell."""
    return run(project, "bash", "-c", readme_command(start), check=check)


def champion(project: Path, model: str) -> str:
    return str(client(project).get_model_version_by_alias(f"digitflow-{model}", "champion").version)


def test_promotion_moves_refuses_and_forces(project: Path) -> None:
    """The README's four `digitflow promote torch` commands, as written, on versions 1 (the fixture's
    model), 2 and 3 (two weaker trainings)."""
    first = readme(project, "digitflow promote torch")
    assert "version 1" in first.stdout
    assert "@champion" in first.stdout
    # Two much weaker models become versions 2 and 3 (only train_torch and evaluate re-run).
    for epochs, lr in ((1, 0.001), (1, 0.00001)):
        set_params(project, train_torch={"lr": lr, "digits": {"epochs": epochs}})
        run(project, "dvc", "repro", "evaluate")
    versions = {str(v.version): v for v in client(project).search_model_versions("name = 'digitflow-torch'")}
    accuracy = {number: float(v.tags["test_accuracy"]) for number, v in versions.items()}
    assert sorted(accuracy) == ["1", "2", "3"]
    assert accuracy["3"] < accuracy["1"]

    refused = readme(project, "digitflow promote torch --version 3", check=False)
    assert refused.returncode == 1
    assert "refusing to promote digitflow-torch version 3" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert champion(project, "torch") == "1"

    forced = readme(project, "digitflow promote torch --version 3 --force")
    assert "version 3" in forced.stdout
    assert "replacing version 1" in forced.stdout
    assert champion(project, "torch") == "3"

    # By test log loss, lower is better: the version with the lowest one, whichever it is.
    log_loss = {number: float(v.tags["test_log_loss"]) for number, v in versions.items()}
    readme(project, "digitflow promote torch --metric test_log_loss")
    assert champion(project, "torch") == min(log_loss, key=log_loss.__getitem__)

    best = readme(project, "digitflow promote torch")  # best by test accuracy: version 1 again
    assert "version 1" in best.stdout
    assert champion(project, "torch") == max(accuracy, key=accuracy.__getitem__) == "1"

    # Back to the fixture's params: DVC restores version 1's model from its run-cache (no new version),
    # so models/ and metrics/evaluate.json are the champion's again for the tests below.
    run(project, "git", "checkout", "params.yaml")
    run(project, "dvc", "repro", "evaluate")
    assert len(client(project).search_model_versions("name = 'digitflow-torch'")) == 3
    evaluated = json.loads((project / "metrics/evaluate.json").read_text())["torch"]["test_accuracy"]
    assert evaluated == pytest.approx(accuracy["1"])


def test_serve_answers_raw_pixels_with_probabilities(project: Path) -> None:
    """`digitflow serve torch` on the README's port 5001, asked by the README's curl command, as written."""
    readme(project, "digitflow promote torch")
    port = 5001
    assert not port_in_use(port), f"port {port}, the README's, is taken: the README's curl needs it"
    server = subprocess.Popen(
        ["digitflow", "serve", "torch"],
        cwd=project,
        env=pipeline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the model server did not start in 120 s"
                time.sleep(1)
        # The README's request: one image (the dataset's first, a 0) gives one row of 10 probabilities.
        answer = json.loads(readme(project, "curl -s http://127.0.0.1:5001/invocations").stdout)
        (row,) = answer["predictions"]
        assert len(row) == 10
        assert sum(row) == pytest.approx(1.0, abs=1e-6)
        assert int(np.argmax(row)) == 0
        assert row[0] > 0.9, "the README shows 0.99... for this 0"
        # The whole test set, the same way: the served model is evaluate's.
        features, labels = raw_test_set(project)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": features.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            proba = np.asarray(json.loads(response.read())["predictions"])
        assert proba.shape == (len(features), 10)
        accuracy = float((proba.argmax(axis=1) == labels).mean())
        expected = json.loads((project / "metrics/evaluate.json").read_text())["torch"]["test_accuracy"]
        assert accuracy == pytest.approx(expected, abs=1e-6)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def scan(features: np.ndarray, row: int) -> Image.Image:
    """A test image as a user's photo of it: 200x200 RGB, dark ink on white paper."""
    grey = np.round(features[row].reshape(8, 8) * 255 / 16).astype(np.uint8)
    return Image.fromarray(255 - grey, mode="L").resize((200, 200), Image.Resampling.NEAREST).convert("RGB")


def test_predict_the_readme_files(project: Path) -> None:
    """The README's two `digitflow predict` commands, as written, on a my_seven.png and a scan.jpg made
    from test images: a line per file, `FILE: DIGIT (probability P)`, as evaluate predicted them."""
    features, labels = raw_test_set(project)
    predicted = {model: evaluate_predictions(project, model) for model in MODELS}
    confident = {
        model: set(
            table.index[(table["predicted"] == table["actual"]) & (table.filter(like="prob_").max(axis=1) > 0.9)]
        )
        for model, table in predicted.items()
    }
    sevens = sorted(
        row for row in confident["torch"] & confident["sklearn"] if predicted["torch"].loc[row, "actual"] == 7
    )
    other = sorted(row for row in confident["torch"] if predicted["torch"].loc[row, "actual"] != 7)
    files = {"my_seven.png": sevens[0], "scan.jpg": other[0]}
    scan(features, files["my_seven.png"]).save(project / "my_seven.png")
    scan(features, files["scan.jpg"]).save(project / "scan.jpg", quality=95)
    try:
        lines = readme(project, "digitflow predict my_seven.png scan.jpg").stdout.strip().splitlines()
        assert len(lines) == 2, lines
        for (name, row), line in zip(files.items(), lines, strict=True):
            found = re.fullmatch(rf"{re.escape(name)}: (\d) \(probability (\d\.\d{{3}})\)", line)
            assert found, line
            assert int(found[1]) == predicted["torch"].loc[row, "predicted"] == labels[row]
            assert float(found[2]) == pytest.approx(predicted["torch"].loc[row].filter(like="prob_").max(), abs=0.02)
        assert lines[0].startswith("my_seven.png: 7 (probability ")

        digitflow(project, "promote", "sklearn")  # the README's second command reads sklearn's @champion
        (line,) = readme(project, "digitflow predict my_seven.png --source champion").stdout.strip().splitlines()
        found = re.fullmatch(r"my_seven\.png: 7 \(probability (\d\.\d{3})\)", line)
        assert found, line
        sklearn_row = predicted["sklearn"].loc[files["my_seven.png"]]
        assert float(found[1]) == pytest.approx(sklearn_row.filter(like="prob_").max(), abs=0.02)
    finally:
        for name in files:
            (project / name).unlink(missing_ok=True)


def write_pngs(project: Path, folder: Path, rows: np.ndarray, features: np.ndarray) -> list[Path]:
    """Each test image twice: as an 8x8 grey PNG (ink light, as in the dataset) and as a 200x200 RGB
    scan with dark ink on white paper."""
    files = []
    for row in rows:
        grey = np.round(features[row].reshape(8, 8) * 255 / 16).astype(np.uint8)
        small = folder / f"test{row}_8x8.png"
        Image.fromarray(grey, mode="L").save(small)
        paper = Image.fromarray(255 - grey, mode="L").resize((200, 200), Image.Resampling.NEAREST).convert("RGB")
        large = folder / f"test{row}_200x200.png"
        paper.save(large)
        files += [small, large]
    return files


@pytest.mark.parametrize("source", ["models", "champion"])
def test_predict_image_files_like_evaluate(project: Path, tmp_path: Path, source: str) -> None:
    digitflow(project, "promote", "torch")
    features, _ = raw_test_set(project)
    expected = evaluate_predictions(project, "torch")
    confident = expected.index[expected.filter(like="prob_").max(axis=1) > 0.9][:6].to_numpy()
    files = write_pngs(project, tmp_path, confident, features)
    result = digitflow(project, "predict", *map(str, files), "--model", "torch", "--source", source)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(files)
    for file, line in zip(files, lines, strict=True):
        row = int(file.name.removeprefix("test").split("_")[0])
        assert line.startswith(f"{file}: {expected.loc[row, 'predicted']} (probability ")


def test_predict_refuses_what_is_not_an_image(project: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image")
    result = digitflow(project, "predict", str(bogus), str(tmp_path / "missing.png"), check=False)
    assert result.returncode == 1
    assert "missing.png" in result.stderr
    assert "Traceback" not in result.stderr

"""Your own images end to end (docs/own_images.md, issue 25): the page's commands, as written, take the
example folder through the whole pipeline with `data.dataset: folder`; every stage names the four
classes, `digitflow predict` prints a class name and the served model's columns follow the class names."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from digitflow.core import dvc_files
from digitflow.models.card import ModelCard
from digitflow.models.predict import convert_image
from tests.conftest import PROJECT_ROOT, make_project_copy, pipeline_env, run
from tests.support.http import invocations, model_server
from tests.support.own_images import CLASSES
from tests.support.readme import readme_command

pytestmark = pytest.mark.e2e
STAGES = list(dvc_files.stages(PROJECT_ROOT / "dvc.yaml"))  # every stage runs on a new dataset
SERVED_PORT = 5001  # the port `digitflow serve` uses by default, as the page runs it


def doc(project: Path, start: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The page's command starting with ``start``, exactly as written, through the shell."""
    return run(project, "bash", "-c", readme_command(start), check=check, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project after the page's first three commands: the example folder in data/images,
    `dvc add`ed, and the experiment that trains on it."""
    project = make_project_copy(tmp_path_factory.mktemp("own-images") / "project")
    commands = ("digitflow example-images", "dvc add data/images", "dvc exp run -S data.dataset=folder")
    outputs = [doc(project, start) for start in commands]
    (project.parent / "output.txt").write_text("".join(result.stdout + result.stderr for result in outputs))
    return project


def output(project: Path) -> str:
    return (project.parent / "output.txt").read_text()


def client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def test_every_stage_runs_on_the_folder_and_both_models_learn_it(project: Path) -> None:
    assert "160 pictures of 4 classes (circle, cross, square, triangle) in data/images" in output(project)
    assert re.findall(r"Running stage '([^']+)'", output(project)) == STAGES
    meta = json.loads((project / "data/processed/meta.json").read_text())
    assert meta["class_names"] == CLASSES
    assert (meta["dataset"], meta["image_shape"], meta["image_recipe"]) == ("folder", [28, 28], "folder")
    assert meta["recipe_options"] == {"ink": "auto", "centre_ink": True}
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for model in ("sklearn", "torch"):
        assert metrics[model]["test_accuracy"] >= 0.9, metrics
    # The folder is fetch's dependency, by the path params.yaml names (DVC's templating).
    assert json.loads(run(project, "dvc", "status", "--json").stdout) == {}
    fetch = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["fetch"]
    assert "data/images" in [dep["path"] for dep in fetch["deps"]]


def test_adding_a_picture_reruns_the_pipeline(project: Path) -> None:
    added = project / "data/images/circle/one-more.png"
    with Image.open(project / "data/images/circle/circle-001.png") as picture:
        picture.rotate(90).save(added)
    try:
        status = run(project, "dvc", "status", "fetch").stdout
        assert "changed deps" in status
        assert re.search(r"modified:\s+data/images\n", status), status
    finally:
        added.unlink()
    assert "Data and pipelines are up to date" in run(project, "dvc", "status").stdout


def test_every_output_names_the_classes(project: Path) -> None:
    """Report, figures, evaluation files, confusion plots: four named classes everywhere."""
    report = (project / "reports/report.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(figures) == 8
    for link in figures:
        assert (project / "reports" / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    assert "## Data checks" in report
    assert "no duplicates, no leakage between the parts of the split, no unbalanced classes" in report
    rows = re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", report, re.MULTILINE)
    assert [row[0] for row in rows] == CLASSES
    assert all(int(images) == 40 == int(train) + int(val) + int(test) for _, images, train, val, test in rows)
    evaluation = project / "reports/evaluation"
    for model in ("sklearn", "torch"):
        assert json.loads((evaluation / f"confusion_{model}.json").read_text())["labels"] == CLASSES
        predictions = pd.read_csv(evaluation / f"predictions_{model}.csv")
        assert list(predictions.columns[3:]) == [f"prob_{name}" for name in CLASSES]
        assert set(predictions["actual"]) == set(CLASSES)
        assert (project / f"metrics/confusion/{model}.csv").read_text().splitlines()[1].split(",")[0] in CLASSES
        per_class = pd.read_csv(evaluation / f"classification_report_{model}.csv", index_col="class")
        assert list(per_class.index[:4]) == CLASSES
        with np.load(project / f"models/{model}/coefficients.npz") as coefficients:
            assert coefficients["coef"].shape == (4, 28 * 28)
    workbook = pd.read_excel(evaluation / "evaluation.xlsx", sheet_name="torch", header=None)
    assert set(CLASSES) <= set(workbook[0].astype(str))
    plots = json.loads(run(project, "dvc", "plots", "show", "--json").stdout)["data"]
    confusion = json.dumps(plots["metrics/confusion/torch.csv"])
    assert all(f'"actual": "{name}"' in confusion for name in CLASSES)


def test_mlflow_holds_the_check_and_each_class_by_name(project: Path, tmp_path: Path) -> None:
    store = client(project)
    runs = store.search_runs([store.get_experiment_by_name("digitflow").experiment_id])
    assert sorted(run.data.tags["digitflow.stage"] for run in runs) == ["train_sklearn", "train_torch"]

    def artifact(run_id: str, name: str) -> dict:
        return json.loads(Path(store.download_artifacts(run_id, name, str(tmp_path))).read_text())

    for tracked in runs:
        assert tracked.data.params["dataset"] == "folder"
        for name in CLASSES:
            assert 0.0 <= tracked.data.metrics[f"test_recall.{name}"] <= 1.0
        check = artifact(tracked.info.run_id, "data_check.json")
        assert check == json.loads((project / "reports/data_check.json").read_text())
        assert artifact(tracked.info.run_id, "val_confusion_matrix.json")["labels"] == CLASSES


def test_predict_prints_the_class_name(project: Path) -> None:
    promoted = doc(project, "digitflow promote torch")
    assert "digitflow-torch version 1" in promoted.stdout
    (line,) = doc(project, "digitflow predict data/images/cross/cross-000.png").stdout.splitlines()
    assert re.fullmatch(r"data/images/cross/cross-000\.png: cross \(probability (0\.9\d\d|1\.000)\)", line), line
    pictures = [str(picture(project, name, 7).relative_to(project)) for name in CLASSES]
    shown = run(project, "digitflow", "predict", *pictures, "--source", "champion").stdout.splitlines()
    assert [line.split(": ")[1].split()[0] for line in shown] == CLASSES


def picture(project: Path, name: str, index: int) -> Path:
    """The example's picture ``index`` of class ``name`` (a PNG or a JPEG)."""
    (found,) = (project / "data/images" / name).glob(f"{name}-{index:03d}.*")
    return found


def served_rows(project: Path, card: ModelCard) -> np.ndarray:
    """One picture of each class converted as the card says: what a REST client sends."""
    rows = []
    for name in CLASSES:
        with Image.open(picture(project, name, 11)) as opened:
            rows.append(convert_image(opened, card).pixels.ravel())
    return np.stack(rows)


def test_the_served_model_answers_in_the_order_of_its_class_names(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registered model states its class names, and its columns follow them: through pyfunc, then
    through the page's `digitflow serve torch` over real HTTP."""
    run(project, "digitflow", "promote", "torch")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    pyfunc = mlflow.pyfunc.load_model("models:/digitflow-torch@champion")
    card = ModelCard.from_dict(pyfunc.metadata.metadata)
    assert list(card.class_names) == CLASSES
    assert pyfunc.metadata.get_output_schema().inputs[0].shape == (-1, 4)
    rows = served_rows(project, card)
    proba = np.asarray(pyfunc.predict(rows.astype(np.float32)))
    assert [card.class_names[i] for i in proba.argmax(axis=1)] == CLASSES

    with model_server(["bash", "-c", readme_command("digitflow serve torch")], project, pipeline_env(), SERVED_PORT):
        served = np.asarray(invocations(SERVED_PORT, rows.tolist()))
        assert served.shape == (4, 4)
        np.testing.assert_allclose(served, proba, atol=1e-6)

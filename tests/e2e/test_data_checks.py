"""The data checks of ``data.dataset: folder`` on folders with users' flaws planted in them, through the
real `dvc repro`: each flaw gives its check's message, and where a check refuses, no stage after it runs
and nothing is trained (no model, no MLflow run). One project; each test points ``data.folder`` at its
own flawed copy of the example's first 12 pictures per class."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_project_copy, run
from tests.support import own_images
from tests.support.project import set_params

pytestmark = pytest.mark.e2e


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project_copy(tmp_path_factory.mktemp("checks") / "project")


def flawed(project: Path, name: str) -> Path:
    """A fresh copy of the example's first pictures in the project, and the params pointing at it."""
    folder = own_images.example_folder(project / name)
    set_params(project, data={"dataset": "folder", "folder": name, "centre_ink": True, "skip_unreadable": False})
    return folder


def repro(project: Path, *targets: str) -> tuple[int, str]:
    result = run(project, "dvc", "repro", *targets, check=False, OMP_NUM_THREADS="1")
    return result.returncode, result.stdout + result.stderr


def assert_refused_before_training(project: Path, output: str, stage: str) -> None:
    """The stage failed with one message (no traceback), and nothing after it ran or was written."""
    ran = stages_run(output)
    assert ran[-1] == stage, output
    assert not {"train_sklearn", "train_torch"} & set(ran)
    assert "Traceback" not in output
    assert not (project / "models/sklearn").exists()
    assert not (project / "models/torch").exists()
    assert not (project / "mlflow.db").exists()


def check_summary(project: Path) -> dict:
    return json.loads((project / "reports/data_check.json").read_text())


def test_unreadable_files_are_listed_and_refused_or_left_out_when_asked(project: Path) -> None:
    folder = flawed(project, "unreadable")
    reasons = own_images.plant_unreadable(folder)
    status, output = repro(project)
    assert status != 0
    assert_refused_before_training(project, output, "fetch")
    assert not (project / "data/raw").exists()  # no half-written output
    assert "[fetch] error: 2 of 50 files in unreadable are not readable PNG or JPEG images:" in output
    for path, reason in reasons.items():
        assert re.search(rf"^  {re.escape(path)}: {reason}", output, re.MULTILINE), output
    assert "data.skip_unreadable: true" in output
    assert ".DS_Store" not in output  # hidden files are not pictures, nor mistakes

    set_params(project, data={"skip_unreadable": True})
    status, output = repro(project, "check")
    assert status == 0, output
    summary = check_summary(project)
    assert [item["path"] for item in summary["unreadable_left_out"]] == list(reasons)
    assert summary["outside_classes"] == ["README.txt"]
    assert summary["images"] == 48
    assert "[check] 2 unreadable files left out (data.skip_unreadable)" in output
    assert "[check] 1 file outside any class folder left out (README.txt)" in output


def test_a_picture_under_two_classes_is_refused_naming_both_files(project: Path) -> None:
    folder = flawed(project, "two-labels")
    original, copy = own_images.plant_cross_class_duplicate(folder)
    status, output = repro(project)
    assert status != 0
    assert_refused_before_training(project, output, "fetch")
    assert "1 picture(s) are filed under two or more classes" in output
    assert f"  {original} = {copy}" in output


def test_a_class_too_small_for_the_split_is_refused_by_name_with_the_count_it_needs(project: Path) -> None:
    folder = flawed(project, "small-class")
    own_images.plant_small_class(folder, "star", count=3)
    status, output = repro(project)
    assert status != 0
    assert_refused_before_training(project, output, "split")
    assert not (project / "data/split").exists()
    assert "with split.test_size = 0.23, each class needs at least 5 images" in output
    assert "and this class has fewer: 'star' (3). Add images of them" in output


def test_duplicates_leakage_and_imbalance_are_reported(project: Path) -> None:
    folder = flawed(project, "duplicates")
    twins = own_images.plant_duplicates(folder, "cross", count=8)
    own_images.keep_only(folder, "triangle", 5)
    status, output = repro(project, "check")
    assert status == 0, output
    summary = check_summary(project)
    assert summary["duplicates_within_class"]["groups"] == 8
    assert summary["duplicates_within_class"]["extra_copies"] == 8
    assert summary["duplicates_across_classes"]["groups"] == 0
    # Leakage, counted independently: test images whose planted twin is in training.
    records = pd.read_csv(project / "data/raw/files.csv", dtype=str)
    with np.load(project / "data/split/indices.npz") as split:
        part = {records.loc[row, "path"]: name for name in ("train", "val", "test") for row in split[name]}
    pairs = [*twins.items(), *((original, copy) for copy, original in twins.items())]
    leaked = sum(part[one] == "test" and part[other] == "train" for one, other in pairs)
    assert leaked > 0, "the planted twins must straddle the split for this test to mean anything"
    assert summary["leakage"]["test_in_train"] == leaked
    assert f"leakage: {leaked} test image" in output
    # 20 crosses against 5 triangles: four times as many.
    assert summary["imbalance"] == {"largest": "cross", "smallest": "triangle", "ratio": 4.0, "unbalanced": True}
    assert "consider train_sklearn.class_weight: balanced and train_torch.class_weight: balanced" in output
    assert "8 extra copies of 8 pictures within a class" in output

"""Each stage's code reaches DVC through stage ``code``: every other stage depends on its own
``data/code/<stage>.json`` and on no project file directly, and that file names exactly the project modules
the stage can import (less the hand-over to a warm stage server, which decides where it runs, not what it
computes), found by a static scan of every import, those inside functions included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from digitflow.core import code_graph, paths
from tests.conftest import run
from tests.support.imports import ROOT, closure, code_files, stage_module

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
CODE_STAGE = "code"
OTHER_STAGES = sorted(set(STAGES) - {CODE_STAGE})


def project_paths(deps: list) -> list[str]:
    """The deps inside the project's code folders (``digitflow/...``, ``stages/...``)."""
    return [dep for dep in deps if isinstance(dep, str) and dep.split("/")[0] in code_graph.PROJECT_PACKAGES]


def test_stage_code_depends_on_the_code_folders_and_writes_one_file_per_stage() -> None:
    stage = STAGES[CODE_STAGE]
    assert stage["cmd"] == "python -m stages.code"
    assert sorted(stage["deps"]) == sorted(code_graph.PROJECT_PACKAGES)
    assert stage["outs"] == [paths.CODE_DIR.as_posix()]
    assert next(iter(STAGES)) == CODE_STAGE, "stage code comes first in dvc.yaml"
    # Every stage module has its stage, and every stage its module.
    assert sorted(code_graph.stage_modules(ROOT)) == sorted(STAGES)


@pytest.mark.parametrize("name", OTHER_STAGES)
def test_each_stage_depends_on_its_code_file_alone(name: str) -> None:
    deps = STAGES[name].get("deps", [])
    assert paths.code_fingerprint_file(name).as_posix() in deps, f"{name}: its code file is not a dep"
    assert project_paths(deps) == [], f"{name} lists project files; stage code covers them"
    assert stage_module(STAGES[name]["cmd"]) == f"stages.{name}"


@pytest.mark.parametrize("name", OTHER_STAGES)
def test_code_file_names_every_module_the_stage_can_import(name: str) -> None:
    files = code_graph.fingerprint(name, ROOT)
    assert sorted(files) == code_files(f"stages.{name}")
    assert f"stages/{name}.py" in files
    assert "digitflow/core/determinism.py" in files  # applied before NumPy loads: it is an input
    assert "stages/__init__.py" in files
    assert not [file for file in files if file.startswith("digitflow/core/warm/")], "the hand-over is not code"
    assert all(len(md5) == 32 for md5 in files.values())


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "digitflow" / "core").mkdir(parents=True)
    for package in ("stages", "digitflow", "digitflow/core"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "digitflow" / "core" / "late.py").write_text("")
    (tmp_path / "stages" / "late.py").write_text("def main():\n    from digitflow.core import late\n")
    assert "digitflow.core.late" in closure("stages.late", tmp_path)
    assert "digitflow/core/late.py" in code_graph.fingerprint("late", tmp_path)


def test_a_file_changes_only_with_the_code_its_stage_can_import(tmp_path: Path) -> None:
    """The promise DVC relies on, on a small tree: an edit changes the files of the stages that import the
    edited module (through any chain), and no other byte."""
    for folder in ("stages", "digitflow"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "digitflow" / "shared.py").write_text("")
    (tmp_path / "digitflow" / "figures.py").write_text("from digitflow import shared\n")
    (tmp_path / "stages" / "train.py").write_text("from digitflow import shared\n")
    (tmp_path / "stages" / "report.py").write_text("import digitflow.figures\n")
    before = {stage: code_graph.fingerprint(stage, tmp_path) for stage in ("train", "report")}
    (tmp_path / "digitflow" / "figures.py").write_text("from digitflow import shared  # edited\n")
    after = {stage: code_graph.fingerprint(stage, tmp_path) for stage in ("train", "report")}
    assert after["train"] == before["train"]
    assert after["report"]["digitflow/figures.py"] != before["report"]["digitflow/figures.py"]
    assert {k: v for k, v in after["report"].items() if k != "digitflow/figures.py"} == {
        k: v for k, v in before["report"].items() if k != "digitflow/figures.py"
    }


def test_stage_code_writes_what_the_graph_says(project_copy: Path) -> None:
    """``python -m stages.code`` as DVC runs it, in a copy of the project: one file per other stage, each
    naming the stage's files with their MD5, the same bytes on a second run."""
    run(project_copy, "python", "-m", "stages.code")
    written = sorted((project_copy / paths.CODE_DIR).iterdir())
    assert [path.name for path in written] == [f"{name}.json" for name in OTHER_STAGES]
    first = {path.name: path.read_bytes() for path in written}
    for name in OTHER_STAGES:
        content = json.loads(first[f"{name}.json"])
        assert content == {"stage": name, "files": code_graph.fingerprint(name, project_copy)}
    run(project_copy, "python", "-m", "stages.code")
    assert {path.name: path.read_bytes() for path in (project_copy / paths.CODE_DIR).iterdir()} == first

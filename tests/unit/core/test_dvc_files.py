"""digitflow.core.dvc_files: what dvc.yaml and dvc.lock say, from the project's own files and small ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from digitflow.core.dvc_files import entry_path, producing_stage, recorded_hashes, stage_deps, stages
from tests.conftest import PROJECT_ROOT

DVC_YAML = {
    "stages": {
        "prepare": {
            "cmd": "python -m stages.prepare",
            "deps": ["stages/prepare.py", {"data/raw": {"persist": True}}],
            "outs": ["data/processed", {"data/cache": {"cache": False}}],
        },
        "score": {
            "cmd": "python -m stages.score",
            "deps": ["data/processed"],
            "metrics": [{"metrics/score.json": {"cache": False}}],
            "plots": [{"reports/plots": None}],
        },
    }
}


@pytest.fixture
def dvc_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump(DVC_YAML))
    return path


def test_the_projects_stages_in_order() -> None:
    assert list(stages(PROJECT_ROOT / "dvc.yaml")) == [
        "code",
        "validate",
        "fetch",
        "preprocess",
        "split",
        "check",
        "train_sklearn",
        "train_torch",
        "evaluate",
        "report",
    ]


@pytest.mark.parametrize("text", [None, "", "stages: [\n", "- a list\n", "stages: not a mapping\n", "vars: {}\n"])
def test_a_missing_or_unreadable_dvc_yaml_has_no_stages(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "dvc.yaml"
    if text is not None:
        path.write_text(text)
    assert stages(path) == {}
    assert stage_deps("prepare", path) == []
    assert producing_stage(Path("data/processed"), path) is None


def test_entry_path() -> None:
    assert entry_path("data/split") == "data/split"
    assert entry_path({"metrics/evaluate.json": {"cache": False}}) == "metrics/evaluate.json"


def test_stage_deps_are_paths_whatever_the_entry_form(dvc_yaml: Path) -> None:
    assert stage_deps("prepare", dvc_yaml) == ["stages/prepare.py", "data/raw"]
    assert stage_deps("no_such_stage", dvc_yaml) == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data/processed", ("prepare", True)),
        ("data/processed/features.npy", ("prepare", True)),  # inside an output folder
        ("data/cache/x.bin", ("prepare", False)),
        ("metrics/score.json", ("score", False)),
        ("reports/plots/a.png", ("score", True)),  # an entry with empty options
        ("data/processed2/x", None),  # a longer name is not inside the folder
        ("data", None),  # a folder holding outputs is not one
        ("stages/prepare.py", None),  # a dependency, not an output
    ],
)
def test_producing_stage(dvc_yaml: Path, path: str, expected) -> None:
    assert producing_stage(Path(path), dvc_yaml) == expected


def test_recorded_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "prepare": {"outs": [{"path": "data/processed", "md5": "a" * 32 + ".dir"}]},
                    "score": {"outs": [{"path": "metrics/score.json"}]},
                    "never_ran": {},
                },
            }
        )
    )
    assert recorded_hashes(lock) == {"data/processed": "a" * 32 + ".dir", "metrics/score.json": ""}
    assert recorded_hashes(tmp_path / "missing.lock") == {}
    lock.write_text("schema: '2.0'\n")
    assert recorded_hashes(lock) == {}

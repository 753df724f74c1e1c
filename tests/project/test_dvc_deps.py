"""Each stage's code deps in dvc.yaml are exactly the project modules it can import (less the hand-over to
a warm stage server, which decides where it runs, not what it computes), so a change to any of them
re-runs the stage (and nothing else does). Found by a static scan of every import, those inside
functions included; `python -m tests.support.imports --write` brings dvc.yaml up to date."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run
from tests.support.imports import ROOT, closure, code_deps, is_code, stage_module
from tests.support.readme import readme_command

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def declared_code(stage: dict) -> list[str]:
    return sorted(dep for dep in stage.get("deps", []) if isinstance(dep, str) and is_code(dep))


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_name_every_module_it_imports(name: str) -> None:
    module = stage_module(STAGES[name]["cmd"])
    assert module is not None, f"{name}: not a `python -m stages.<name>` command"
    declared, imported = declared_code(STAGES[name]), code_deps(module)
    missing = sorted(set(imported) - set(declared))
    extra = sorted(set(declared) - set(imported))
    assert not missing, (
        f"{name} imports {missing}, which its dvc.yaml deps do not name (fix: {__doc__.split('; ')[-1]})"
    )
    assert not extra, f"{name} lists {extra} in dvc.yaml but does not import them"


def test_the_warm_hand_over_is_not_a_dep_but_the_cpu_pins_are() -> None:
    for name, stage in STAGES.items():
        declared = declared_code(stage)
        assert not [dep for dep in declared if dep.startswith("digitflow/core/warm/")], name
        assert "digitflow/core/determinism.py" in declared, name  # applied before NumPy loads: it is an input
        assert "stages/__init__.py" in declared, name


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "digitflow" / "core").mkdir(parents=True)
    for package in ("stages", "digitflow", "digitflow/core"):
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "digitflow" / "core" / "late.py").write_text("")
    (tmp_path / "stages" / "late.py").write_text("def main():\n    from digitflow.core import late\n")
    assert "digitflow.core.late" in closure("stages.late", tmp_path)


def test_documented_fix_restores_a_dropped_module_and_keeps_everything_else(project_copy: Path) -> None:
    """docs/development.md's command, as written, in a copy of the project: it puts back a code dep that
    was dropped, and nothing else of dvc.yaml (data deps, params, outs, comments) changes."""
    command = readme_command("python -m tests.support.imports --write")
    dvc_yaml = project_copy / "dvc.yaml"
    text = dvc_yaml.read_text()
    assert run(project_copy, "bash", "-c", command).stdout.strip() == "updated: nothing"
    dvc_yaml.write_text(text.replace("    - digitflow/core/shell.py\n", "", 1))
    assert run(project_copy, "bash", "-c", command).stdout.strip() == f"updated: {next(iter(STAGES))}"
    assert dvc_yaml.read_text() == text

"""The layer rule holds for the whole package, and the check would catch an import that breaks it."""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import ROOT, closure
from tests.support.layers import RANKS, layer_violations


def test_no_module_imports_a_later_layer_or_a_peer() -> None:
    assert layer_violations() == []


def _module(root: Path, name: str, source: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in [path.parent, *path.parent.parents]:
        if folder == root:
            break
        (folder / "__init__.py").touch()
    path.write_text(source)


def test_an_upward_or_sideways_import_is_reported(tmp_path: Path) -> None:
    _module(tmp_path, "digitflow.core.io", "def later():\n    from digitflow.tracking.runs import RunInfo\n")
    _module(tmp_path, "digitflow.tracking.runs", "from digitflow.core import io\n")
    _module(tmp_path, "digitflow.sweep.worker", "import digitflow.team.stack\n")
    _module(tmp_path, "digitflow.team.stack", "from digitflow.core.io import later\n")
    assert layer_violations(tmp_path) == [
        "digitflow.core.io -> digitflow.tracking.runs (core may not import tracking)",
        "digitflow.sweep.worker -> digitflow.team.stack (sweep may not import team)",
    ]


def test_every_subpackage_has_a_rank() -> None:
    subpackages = {path.parent.name for path in (ROOT / "digitflow").glob("*/__init__.py")}
    assert subpackages <= set(RANKS), subpackages - set(RANKS)


def test_data_stages_reach_no_model_or_tracking_code() -> None:
    """Checked on the import graph: the stages that only move arrays import nothing of the layers that
    bring PyTorch and MLflow (tests/e2e/test_faults.py checks the modules really loaded)."""
    for stage in ("stages.validate", "stages.preprocess", "stages.split"):
        reached = {name.split(".")[1] for name in closure(stage) if name.startswith("digitflow.")}
        assert reached <= {"core", "data"}, (stage, reached)

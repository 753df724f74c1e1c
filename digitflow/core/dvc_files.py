"""What ``dvc.yaml`` and ``dvc.lock`` say, read in one place: which stage writes a path, what a stage
depends on, and the hashes DVC recorded for each output.

Read as plain YAML (DVC's own API would import all of DVC into every stage for three lookups), with
libyaml's parser where PyYAML has it: ``dvc.lock`` runs to hundreds of lines, which the pure-Python
parser is slow to read, and the training stages read it twice.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from digitflow.core.paths import DVC_FILE, DVC_LOCK_FILE

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def stages(dvc_yaml: Path = DVC_FILE) -> dict[str, Any]:
    """The ``stages`` mapping of ``dvc.yaml``; empty if the file is missing or unreadable."""
    found = _load(dvc_yaml).get("stages")
    return found if isinstance(found, dict) else {}


def entry_path(entry: str | dict[str, Any]) -> str:
    """A ``deps``/``outs``/``metrics``/``plots`` entry is either ``path`` or ``{path: {options}}``."""
    return entry if isinstance(entry, str) else next(iter(entry))


def stage_deps(stage: str, dvc_yaml: Path = DVC_FILE) -> list[str]:
    return [entry_path(entry) for entry in stages(dvc_yaml).get(stage, {}).get("deps", [])]


def producing_stage(path: Path, dvc_yaml: Path = DVC_FILE) -> tuple[str, bool] | None:
    """The stage whose output holds ``path`` and whether DVC caches that output (``cache: false`` not)."""
    target = PurePosixPath(Path(path).as_posix())
    for name, stage in stages(dvc_yaml).items():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            out = entry_path(entry)
            options = {} if isinstance(entry, str) else (entry[out] or {})
            if target == PurePosixPath(out) or PurePosixPath(out) in target.parents:
                return name, options.get("cache", True)
    return None


def recorded_hashes(lock: Path = DVC_LOCK_FILE) -> dict[str, str]:
    """Output path -> the MD5 that ``dvc.lock`` recorded when its stage last ran."""
    return {
        out["path"]: out.get("md5", "")
        for entry in (_load(lock).get("stages") or {}).values()
        for out in entry.get("outs", [])
    }

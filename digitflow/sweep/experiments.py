"""The DVC side of a sweep trial after it ran (``dvc_trial``): read its files, and clear the temporary copy
a killed trial leaves behind.

``dvc exp run --temp`` runs in ``.dvc/tmp/exps/standalone/<tmp>``; when its process dies outright (a lost
machine, SIGKILL) DVC never removes that copy, and ``dvc exp show`` lists the experiment as ``Running``
for ever; DVC has no command to drop it. Once the study has failed that trial (its heartbeat stopped),
a worker on the same repository removes the copy if the ``dvc`` process that held its lock is gone.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

from digitflow.core.git import git
from digitflow.core.processes import process_alive

log = logging.getLogger(__name__)
EXPS_TMP = Path(".dvc") / "tmp" / "exps"


def experiment_ref(baseline: str, name: str) -> str:
    return f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}"


def read_experiment(root: Path, baseline: str, name: str, relative: Path) -> Any:
    """A JSON file committed to git in experiment ``name``."""
    return json.loads(git("show", f"{experiment_ref(baseline, name)}:{relative.as_posix()}", cwd=root))


def read_experiment_output(root: Path, baseline: str, name: str, relative: Path) -> Any:
    """A JSON file that experiment ``name`` produced as a DVC-cached output (not in its commit), read
    from the cache through DVC's API, as ``dvc exp show`` does."""
    import dvc.api

    return json.loads(dvc.api.read(relative.as_posix(), repo=str(root), rev=experiment_ref(baseline, name)))


def _lock_holder(temp: Path) -> int | None:
    try:
        return int((temp / ".dvc" / "tmp" / "lock").read_text().strip())
    except (OSError, ValueError):
        return None


def clear_abandoned(root: Path, failed: Collection[str]) -> list[str]:
    """Remove the temporary copies of experiments named in ``failed`` whose dvc process is dead."""
    standalone = (root / EXPS_TMP / "standalone").resolve()
    cleared = []
    for info_file in sorted((root / EXPS_TMP / "run").glob("*/*.run")):
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            continue
        temp = Path(info.get("root_dir", ""))
        if info.get("location") != "tempdir" or info.get("name") not in failed or standalone not in temp.parents:
            continue
        pid = _lock_holder(temp)
        if pid is None or process_alive(pid):
            continue
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(standalone / "run" / info_file.parent.name, ignore_errors=True)
        shutil.rmtree(info_file.parent, ignore_errors=True)
        log.warning(
            "removed the temporary copy of killed experiment %s (its dvc process %d is gone)", info["name"], pid
        )
        cleared.append(info["name"])
    return cleared

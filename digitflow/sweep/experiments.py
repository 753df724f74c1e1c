"""The DVC side of a sweep trial: run it as ``dvc exp run --temp``, read its committed files, and clear the
temporary copy a killed trial leaves behind.

``dvc exp run --temp`` runs in ``.dvc/tmp/exps/standalone/<tmp>``; when its process dies outright (a lost
machine, SIGKILL) DVC never removes that copy, and ``dvc exp show`` lists the experiment as ``Running``
for ever; DVC has no command to drop it. Once the study has failed that trial (its heartbeat stopped),
a worker on the same repository removes the copy if the ``dvc`` process that held its lock is gone.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from digitflow.core.git import git
from digitflow.core.processes import process_alive

log = logging.getLogger(__name__)
EXPS_TMP = Path(".dvc") / "tmp" / "exps"


def run_experiment(root: Path, name: str, settings: Sequence[str], env: Mapping[str, str]) -> int:
    """``dvc exp run --temp -n NAME -S ...`` with this interpreter's DVC; its output goes to ours."""
    # Several trials start and finish at once on one repository: each briefly needs its lock (to stash the
    # workspace, then to record the experiment), so wait for it instead of failing after DVC's 3 s.
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "exp", "run", "--temp", "-n", name, *settings]
    with subprocess.Popen(command, cwd=root, env=dict(env)) as proc:
        try:
            return proc.wait()
        except BaseException:
            proc.terminate()
            raise


def read_experiment(root: Path, baseline: str, name: str, relative: Path) -> Any:
    """A JSON file as committed in experiment ``name`` (``refs/exps/<baseline>/<name>``)."""
    ref = f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}"
    return json.loads(git("show", f"{ref}:{relative.as_posix()}", cwd=root))


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

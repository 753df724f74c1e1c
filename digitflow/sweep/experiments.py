"""The DVC side of a sweep trial: run it as ``dvc exp run --temp``, read its files, and clear the
temporary copy a killed trial leaves behind.

Each trial's ``dvc exp run`` is DVC's own command-line entry point in a process of its own, forked from a
fork server that imported DVC when the worker started (``multiprocessing``'s "forkserver"): a new ``dvc``
process per trial would import DVC again, about a second on two cores, as long as a warm stage's work.
The trial's process is as separate as a ``dvc`` command (its own working folder, environment and signal
handling: DVC ignores Ctrl-C while a stage runs, and the worker must not), and DVC runs the same
``python -m stages.<name>`` commands as from a shell. Where fork is not safe (macOS) it is started afresh.

``dvc exp run --temp`` runs in ``.dvc/tmp/exps/standalone/<tmp>``; when its process dies outright (a lost
machine, SIGKILL) DVC never removes that copy, and ``dvc exp show`` lists the experiment as ``Running``
for ever; DVC has no command to drop it. Once the study has failed that trial (its heartbeat stopped),
a worker on the same repository removes the copy if the ``dvc`` process that held its lock is gone.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from digitflow.core.git import git
from digitflow.core.processes import process_alive

log = logging.getLogger(__name__)
EXPS_TMP = Path(".dvc") / "tmp" / "exps"


# What ``dvc exp run --temp -S ...`` imports (found by comparing ``sys.modules`` before and after one): the fork
# server imports it once per worker, so no trial's process imports it again.
DVC_MODULES = (
    "dvc.api", "dvc.cli", "dvc.cli.parser", "dvc.commands.experiments.run", "dvc.repo", "dvc.repo.index",
    "dvc.repo.graph", "dvc.repo.plots", "dvc.repo.brancher", "dvc.repo.stage", "dvc.repo.artifacts",
    "dvc.repo.datasets", "dvc.repo.open_repo", "dvc.cachemgr", "dvc.data_cloud",
    "dvc.repo.experiments.executor.local", "dvc.repo.experiments.queue.tempdir", "dvc.repo.experiments.queue.celery",
    "dvc.repo.reproduce", "dvc.stage.run", "dvc.utils.hydra", "dvc.utils.strictyaml", "dvc_data.index.checkout",
    "dvc_data.hashfile.status", "dvc_render", "scmrepo.git", "scmrepo.git.backend.dulwich",
    "scmrepo.git.backend.pygit2", "dulwich.porcelain", "dulwich.stash", "dulwich.worktree", "networkx",
    "hydra.compose", "hydra.initialize", "omegaconf", "ruamel.yaml", "dateutil.parser", "platformdirs", "pygit2",
    "pyparsing", "dvc.repo.experiments", "dvc_data.hashfile.db", "dvc_data.fs", "dvc.dirs", "dvc.repo.trie",
    "fsspec.implementations.memory", "dulwich.gc", "dulwich.filters", "dulwich.commit_graph",
)  # fmt: skip
# How long a trial interrupted by Ctrl-C (which reaches its dvc too) may take to clean up after itself.
INTERRUPT_GRACE_S = 10


@functools.cache
def dvc_processes() -> multiprocessing.context.BaseContext:
    """Where trials' ``dvc`` processes come from; on Linux, the fork server starts now, importing DVC."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(DVC_MODULES))
    multiprocessing.forkserver.ensure_running()
    return context


def _dvc_command(argv: Sequence[str], extra_env: Mapping[str, str], cwd: Path) -> None:
    """The trial's process: what ``cd CWD && VAR=... dvc ARGV`` runs."""
    from dvc.cli import main

    os.environ.update(extra_env)
    os.chdir(cwd)
    sys.exit(main(list(argv)))


def run_experiment(root: Path, name: str, settings: Sequence[str], extra_env: Mapping[str, str]) -> int:
    """``dvc exp run --temp -n NAME -S ...`` in ``root``, with ``extra_env`` added to the stages'
    environment; its output goes to ours; its exit status is returned."""
    # Several trials start and finish at once on one repository: each briefly needs its lock (to stash the
    # workspace, then to record the experiment), so wait for it instead of failing after DVC's 3 s.
    argv = ["--wait-for-lock", "exp", "run", "--temp", "-n", name, *settings]
    process = dvc_processes().Process(target=_dvc_command, args=(argv, dict(extra_env), root), name=f"dvc {name}")
    process.start()
    try:
        process.join()
    except BaseException:  # Ctrl-C: it reached the trial's dvc as well, which ends its stage and cleans up
        process.join(INTERRUPT_GRACE_S)
        if process.exitcode is None:
            process.terminate()
            process.join()
        raise
    return process.exitcode  # set once joined


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

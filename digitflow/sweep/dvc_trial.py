"""One trial's DVC experiment: what ``dvc --wait-for-lock exp run --temp -n NAME -S ...`` does, for that
experiment and no other, in a process forked from a fork server that imported DVC once per worker.

Why not the command itself: ``dvc exp run --temp`` puts its experiment on the stash that all experiments
of a repository share (``refs/exps/stash``), releases the repository's lock, and then runs the newest
entry on that stash, again and again until it is empty, reading the stash without a lock (DVC 3's
``TempDirQueue.get`` and ``reproduce``; parallel runs are "experimental" upstream, treeverse/dvc#10673).
Two workers starting trials at once on one repository then run each other's experiments, so a trial's
MLflow run carries the other trial's number, and when both read the same entry, the one that comes second
finds it gone and runs it again without its name: an extra experiment ``exp-<hash>`` and an extra MLflow
run, seen in a CI run of the two-worker sweep. Here the experiment goes on the stash and comes off it again
by its own revision while the repository's lock is held, then runs alone: DVC's own steps of ``exp run
--temp`` (``Experiments.new``, ``init_executor``, the temporary-copy queue's ``_reproduce_entry``), in
DVC's order, with DVC's messages and exit codes (255 when it fails, 252 when interrupted).

Why a fork server: a new ``dvc`` process per trial would import DVC again, about a second on two cores,
as long as a warm stage's work. The trial's process is as separate as a ``dvc`` command (its own working
folder, environment and signal handling: DVC ignores Ctrl-C while a stage runs, and the worker must not),
and DVC runs the same ``python -m stages.<name>`` commands as from a shell. Where fork is not safe (macOS)
each trial's process starts afresh.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# What a trial's DVC imports (found by comparing ``sys.modules`` before and after one): the fork server
# imports it once per worker, so no trial's process imports it again.
DVC_MODULES = (
    "dvc.api", "dvc.repo", "dvc.repo.index", "dvc.repo.graph", "dvc.repo.plots", "dvc.repo.brancher",
    "dvc.repo.stage", "dvc.repo.artifacts", "dvc.repo.datasets", "dvc.repo.open_repo", "dvc.cachemgr",
    "dvc.data_cloud", "dvc.repo.experiments.executor.local", "dvc.repo.experiments.queue.tempdir",
    "dvc.repo.experiments.queue.celery", "dvc.repo.reproduce", "dvc.stage.run", "dvc.utils.cli_parse",
    "dvc.utils.hydra", "dvc.utils.strictyaml", "dvc_data.index.checkout", "dvc_data.hashfile.status",
    "dvc_render", "scmrepo.git", "scmrepo.git.backend.dulwich", "scmrepo.git.backend.pygit2",
    "dulwich.porcelain", "dulwich.stash", "dulwich.worktree", "networkx", "hydra.compose", "hydra.initialize",
    "omegaconf", "ruamel.yaml", "dateutil.parser", "platformdirs", "pygit2", "pyparsing",
    "dvc.repo.experiments", "dvc_data.hashfile.db", "dvc_data.fs", "dvc.dirs", "dvc.repo.trie",
    "fsspec.implementations.memory", "dulwich.gc", "dulwich.filters", "dulwich.commit_graph",
)  # fmt: skip
# How long a trial interrupted by Ctrl-C (which reaches its dvc too) may take to clean up after itself.
INTERRUPT_GRACE_S = 10
FAILED, INTERRUPTED = 255, 252  # `dvc`'s exit codes


@functools.cache
def dvc_processes() -> multiprocessing.context.BaseContext:
    """Where trials' processes come from; on Linux, the fork server starts now, importing DVC (call it
    before the worker starts a thread, such as Optuna's heartbeat)."""
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(DVC_MODULES))
    multiprocessing.forkserver.ensure_running()
    return context


def run_one_experiment(name: str, assignments: Sequence[str]) -> None:
    """In the working folder's repository, run experiment ``name`` with ``assignments`` (``key=value``, as
    ``-S``) in a temporary copy, as ``dvc --wait-for-lock exp run --temp`` does, touching no other entry
    of the experiments' stash. Raises what DVC raises."""
    from dvc.repo import Repo, lock_repo
    from dvc.repo.experiments.executor.local import TempDirExecutor
    from dvc.utils.cli_parse import to_path_overrides

    with Repo(_wait_for_lock=True) as repo:
        experiments = repo.experiments
        queue = experiments.tempdir_queue
        with lock_repo(repo):  # nobody's `dvc exp run` can take the entry between these two steps
            entry = experiments.new(queue, params=to_path_overrides(assignments), name=name)
            executor = queue.init_executor(experiments, entry, TempDirExecutor, wdir=queue._standalone_tmp_dir)
        results = queue._reproduce_entry(entry, executor)
        revs = [rev for result in results.values() for rev in result]
        if revs:
            experiments._log_reproduced(revs, tmp_dir=True)


def _trial_process(name: str, assignments: Sequence[str], extra_env: Mapping[str, str], cwd: Path) -> None:
    """The trial's process: ``cd CWD && VAR=... dvc --wait-for-lock exp run --temp -n NAME -S ...``."""
    from dvc.exceptions import DvcException
    from dvc.ui import ui

    logger = logging.getLogger("dvc.cli")  # DVC's handlers print its messages as the command does

    os.environ.update(extra_env)
    os.chdir(cwd)
    ui.enable()
    try:
        run_one_experiment(name, assignments)
    except KeyboardInterrupt:
        logger.exception("interrupted by the user")
        sys.exit(INTERRUPTED)
    except DvcException:
        logger.exception("")
        sys.exit(FAILED)


def run_experiment(root: Path, name: str, assignments: Sequence[str], extra_env: Mapping[str, str]) -> int:
    """Experiment ``name`` of the repository at ``root`` in a process of its own, with ``extra_env`` added
    to the stages' environment; its output goes to ours; its exit status is returned."""
    args = (name, list(assignments), dict(extra_env), root)
    process = dvc_processes().Process(target=_trial_process, args=args, name=f"dvc {name}")
    process.start()
    try:
        process.join()
    except BaseException:  # Ctrl-C: it reached the trial's process as well, which ends its stage and cleans up
        process.join(INTERRUPT_GRACE_S)
        if process.exitcode is None:
            process.terminate()
            process.join()
        raise
    return process.exitcode if process.exitcode is not None else 1

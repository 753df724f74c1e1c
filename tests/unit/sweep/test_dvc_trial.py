"""A trial runs its own DVC experiment and no other: not the experiments that other `dvc exp run` processes
have put on the repository's shared stash and not yet taken off (``dvc exp run --temp`` runs those too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digitflow.sweep.dvc_trial import FAILED, run_experiment
from digitflow.sweep.experiments import read_experiment
from tests.conftest import git
from tests.support.sweeps import experiments

STAGE = """\
import json, os, sys, yaml
x = yaml.safe_load(open("params.yaml"))["x"]
if x < 0:
    sys.exit("x must not be negative")
json.dump({"x": x, "mark": os.environ.get("MARK")}, open("out.json", "w"))
"""


def one_stage_project(root: Path) -> str:
    """A real git and DVC repository whose one stage writes ``x`` and ``$MARK`` to out.json (a metric kept
    in git); the baseline commit is returned."""
    (root / "stage.py").write_text(STAGE)
    (root / "params.yaml").write_text("x: 1\n")
    stage = {"cmd": f"{sys.executable} stage.py", "deps": ["stage.py"], "params": ["x"]}
    stage["metrics"] = [{"out.json": {"cache": False}}]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"write": stage}}))
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "baseline")
    return git(root, "rev-parse", "HEAD").strip()


def queue_elsewhere(root: Path, name: str, assignment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What another `dvc exp run --temp` has done when it has put its experiment on the stash and not yet
    taken it off."""
    from dvc.repo import Repo

    with monkeypatch.context() as patch, Repo(str(root)) as repo:
        patch.chdir(root)  # DVC applies -S to params.yaml in the working folder
        repo.experiments.new(repo.experiments.tempdir_queue, params={"params.yaml": [assignment]}, name=name)


def stashed(root: Path) -> list[str]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [entry.name for entry in repo.experiments.tempdir_queue.stash.stash_revs.values()]


def test_a_trial_runs_only_its_own_experiment_with_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = one_stage_project(tmp_path)
    queue_elsewhere(tmp_path, "other", "x=3", monkeypatch)

    assert run_experiment(tmp_path, "mine", ["x=2"], {"MARK": "trial 7"}) == 0

    assert set(experiments(tmp_path)) - {"stash"} == {"mine"}  # `dvc exp run --temp -n mine` also runs "other" here
    assert read_experiment(tmp_path, baseline, "mine", Path("out.json")) == {"x": 2, "mark": "trial 7"}
    assert stashed(tmp_path) == ["other"]  # still there for the process that put it
    assert git(tmp_path, "status", "--porcelain") == ""  # the workspace is untouched


def test_a_failing_trial_exits_as_dvc_does_and_leaves_no_experiment(tmp_path: Path) -> None:
    one_stage_project(tmp_path)

    assert run_experiment(tmp_path, "broken", ["x=-1"], {}) == FAILED

    assert set(experiments(tmp_path)) == set()
    assert stashed(tmp_path) == []
    assert not list((tmp_path / ".dvc/tmp/exps/standalone").glob("tmp*"))  # DVC removed its copy

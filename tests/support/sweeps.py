"""The small search space the sweep tests use, and the experiments a sweep leaves."""

from pathlib import Path

from tests.conftest import git

# Few epochs and two searched params (one per model, so every trial retrains both): a trial is one
# `dvc exp run` of train_sklearn, train_torch, evaluate and report; the rest comes from the run-cache.
SPACE = {
    "study": "unused",
    "metric": "torch.val_log_loss",
    "trials": 1,
    "space": {
        "train_torch.lr": {"low": 0.001, "high": 0.1, "log": True},
        "train_sklearn.C": {"low": 0.01, "high": 100.0, "log": True},
    },
    "fixed": {"train_torch.digits.epochs": 5},
}


def experiments(project: Path) -> dict[str, str]:
    """DVC experiment name -> its commit, from the refs `dvc exp run` leaves."""
    listing = git(project, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps/").splitlines()
    return {ref.rsplit("/", 1)[1]: rev for ref, rev in (line.split() for line in listing if line)}

"""The small search space the sweep tests use."""

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

"""Sweep: a worker of an Optuna study whose trials are DVC experiments; start it on more processes or machines
with the same ``--study`` and ``--storage`` and they share the work.

Not a DVC stage: it runs ``dvc exp run --temp`` once per trial. Everything is checked before any trial:
the search space (``sweep.yaml``) against params.yaml, the metric (a validation metric), the storage.

    python -m stages.sweep [--config sweep.yaml] [--study NAME] [--storage URL] [--trials N]
                           [--metric torch.val_log_loss] [-S train_torch.digits.epochs=5] [--apply] [--plot FILE]
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import yaml

from digitflow import paths
from digitflow.cli import run_stage
from digitflow.sweep import (
    Settings,
    apply_best,
    default_storage,
    mlflow_comparison,
    open_study,
    quiet_optuna,
    redacted,
    summary,
    work,
)
from digitflow.sweep_space import SWEEP_FILE, SweepConfigError, load_config, parse_assignment, validate
from digitflow.tracking import repository_root

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=SWEEP_FILE, help="search space file (default: sweep.yaml)")
    parser.add_argument("--study", help="study name; experiments are named <study>-<trial> (default: from config)")
    parser.add_argument("--storage", help=f"Optuna database URL (default: sqlite:///{'<repo>'}/optuna.db)")
    parser.add_argument("--trials", type=int, help="completed trials the study needs, all workers together")
    parser.add_argument("--metric", help="validation metric to optimise, e.g. torch.val_log_loss")
    parser.add_argument(
        "-S", "--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE", help="fixed param for trials"
    )
    parser.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's heartbeats")
    parser.add_argument("--grace", type=int, default=120, help="seconds without heartbeat before a trial is failed")
    parser.add_argument("--apply", action="store_true", help="run no trial; write the best params to params.yaml")
    parser.add_argument("--plot", type=Path, help="also write the optimisation history as a PNG")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    try:
        import optuna  # noqa: F401
    except ModuleNotFoundError:
        raise SweepConfigError("Optuna is not installed; install the sweep extra: pip install -e '.[sweep]'") from None
    root = repository_root()
    fixed = dict(parse_assignment(text) for text in args.fixed)
    config = load_config(args.config, study=args.study, trials=args.trials, metric=args.metric, fixed=fixed)
    metric = validate(config, yaml.safe_load(paths.PARAMS_FILE.read_text()) or {})
    settings = Settings(args.storage or default_storage(root), heartbeat_s=args.heartbeat, grace_s=args.grace)
    with quiet_optuna():
        study = open_study(config, metric, settings, root)
        if args.apply:
            values = apply_best(study, config)
            log.info("wrote %s to params.yaml; run `dvc repro` to train with them", values)
            return
        log.info(
            "study %s at %s: %d trials in all, optimising %s",
            config.study,
            redacted(settings.storage),
            config.trials,
            metric,
        )
        work(study, config, metric, settings, root)
        if args.plot:
            write_history_plot(study, args.plot)
    storage_option = f" --storage {redacted(args.storage)}" if args.storage else ""
    print(summary(study, config, metric, storage_option, mlflow_comparison(config, metric)))


def write_history_plot(study: object, path: Path) -> None:
    """Optuna's own optimisation-history figure, for when optuna-dashboard is not at hand."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization.matplotlib import plot_optimization_history

    from digitflow.io import atomic_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # matplotlib plots are "experimental" in Optuna
        axes = plot_optimization_history(study)
    with atomic_path(path) as tmp:
        axes.figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    log.info("wrote %s", path)


if __name__ == "__main__":
    arguments = parse_args()
    run_stage("sweep", lambda: main(arguments))

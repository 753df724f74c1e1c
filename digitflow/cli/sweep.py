"""``digitflow sweep``: a worker of an Optuna study whose trials are DVC experiments; start it on more
processes or machines with the same ``--study`` and ``--storage`` and they share the work.

It runs ``dvc exp run --temp`` once per trial. Everything is checked before any trial: the search space
(``sweep.yaml``) against params.yaml, the metric (a validation metric), the storage.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.errors import DigitflowError

log = logging.getLogger(__name__)


def _sweep(args: argparse.Namespace) -> None:
    try:
        import optuna  # noqa: F401
    except ModuleNotFoundError:
        raise DigitflowError("Optuna is not installed; install the sweep extra: pip install -e '.[sweep]'") from None
    import yaml

    from digitflow.sweep.results import apply_best, mlflow_comparison, summary, write_history_plot
    from digitflow.sweep.space import load_config, parse_assignment, validate
    from digitflow.sweep.study import Settings, default_storage, open_study, quiet_optuna, redacted
    from digitflow.sweep.worker import work
    from digitflow.tracking.store import repository_root

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


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run trials of an Optuna study shared through a database; each trial is a DVC experiment",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--config", type=Path, default=paths.SWEEP_FILE, help="search space file (default: sweep.yaml)")
    parser.add_argument("--study", help="study name; experiments are named <study>-<trial> (default: from config)")
    parser.add_argument("--storage", help="Optuna database URL (default: sqlite:///<repo>/optuna.db)")
    parser.add_argument("--trials", type=int, help="completed trials the study needs, all workers together")
    parser.add_argument("--metric", help="validation metric to optimise, e.g. torch.val_log_loss")
    parser.add_argument(
        "-S", "--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE", help="fixed param for trials"
    )
    parser.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's heartbeats")
    parser.add_argument("--grace", type=int, default=120, help="seconds without heartbeat before a trial is failed")
    parser.add_argument("--apply", action="store_true", help="run no trial; write the best params to params.yaml")
    parser.add_argument("--plot", type=Path, help="also write the optimisation history as a PNG")
    parser.set_defaults(handler=_sweep)

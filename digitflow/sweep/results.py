"""What a sweep leaves a person: the best trial and how to apply it, its params written into params.yaml,
and the optimisation history as a picture."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from digitflow.core import paths
from digitflow.core.io import atomic_path
from digitflow.core.params import set_dotted
from digitflow.sweep.space import Metric, Scalar, SweepConfig, SweepConfigError
from digitflow.sweep.study import state_counts
from digitflow.sweep.worker import assignment, trial_name

log = logging.getLogger(__name__)


def mlflow_comparison(config: SweepConfig, metric: Metric) -> str:
    """Where to compare the study's trials in MLflow: ``digitflow ui --study NAME`` for the local store, the
    address of the study's view on a server (``tracking.ui.study_runs_link`` saves the view: the optimised
    model's runs, ranked by the objective, with that model's searched params)."""
    from digitflow.core.errors import DigitflowError
    from digitflow.tracking.ui import study_runs_link

    # The optimised model's params.yaml keys -> its run's params: train_torch.digits.batch_size -> batch_size
    prefix = f"train_{metric.model}."
    params = tuple(dict.fromkeys(key.rsplit(".", 1)[-1] for key in config.space if key.startswith(prefix)))
    try:
        return study_runs_link(config.study, metric.model, metric.val_key, metric.direction == "minimize", params)
    except DigitflowError as exc:
        return f"(not available: {exc})"


def summary(study: Any, config: SweepConfig, metric: Metric, storage_option: str = "", compare: str = "") -> str:
    """The best trial, its params, its (reported, not optimised) test metric, where to compare the trials
    (``compare``, from ``mlflow_comparison``) and how to apply it."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(state_counts(study).items()))
    lines = [f"study {study.study_name}: {counts}; optimising {metric} ({metric.direction})"]
    try:
        best = study.best_trial
    except ValueError:
        return "\n".join([*lines, "no trial has completed yet"])
    name = best.user_attrs.get("dvc_experiment", trial_name(study.study_name, best.number))
    assignments = " ".join(f"-S {assignment(k, v)}" for k, v in {**config.fixed, **best.params}.items())
    lines += [
        f"best trial: {best.number} (DVC experiment {name}, MLflow run {best.user_attrs.get('mlflow_run_id')})",
        f"  {metric}: {best.value:.6f}",
        f"  {metric.model}.{metric.test_key}: {best.user_attrs.get(metric.test_key)} (reported, not used to choose)",
        *(f"  {key}: {value}" for key, value in best.params.items()),
        *([f"compare the trials' MLflow runs: {compare}"] if compare else []),
        "apply it:",
        f"  dvc exp apply {name}          # on the machine that ran it, or after `dvc exp pull <remote> {name}`",
        f"  digitflow sweep --study {study.study_name}{storage_option} --apply   # writes them to params.yaml",
        f"  (or by hand: dvc exp run {assignments})",
    ]
    return "\n".join(lines)


def apply_best(study: Any, config: SweepConfig, params_file: Path = paths.PARAMS_FILE) -> dict[str, Scalar]:
    """Write the best trial's params (and the sweep's fixed values) into params.yaml, keeping its comments."""
    from dvc.utils.serialize import modify_yaml

    from digitflow.core.params import load_params

    try:
        best = study.best_trial
    except ValueError:
        raise SweepConfigError(f"study {study.study_name!r} has no completed trial to apply") from None
    values = {**config.fixed, **best.params}
    before = params_file.read_text()
    with modify_yaml(params_file) as data:
        for key, value in values.items():
            set_dotted(data, key, value)  # train_torch.lr, or a per-dataset train_torch.digits.epochs
    try:
        load_params(params_file)
    except Exception:
        params_file.write_text(before)  # never leave an invalid params.yaml behind
        raise
    return values


def write_history_plot(study: object, path: Path) -> None:
    """Optuna's own optimisation-history figure, for when optuna-dashboard is not at hand."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # matplotlib plots are "experimental" in Optuna
        axes = plot_optimization_history(study)
    with atomic_path(path) as tmp:
        axes.figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    log.info("wrote %s", path)

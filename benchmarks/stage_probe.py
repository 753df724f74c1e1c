"""Run one pipeline stage exactly as ``python -m stages.<name>`` does, timing the MLflow work inside it.

    python benchmarks/stage_probe.py stages.train_torch OUT.json

Every call into MLflow made by the stage, and the project helpers that exist only to feed MLflow
(creating the store and experiment, run tags, the confusion-matrix figure, per-epoch metrics), is
wrapped with a timer before the stage module is imported; nested calls are counted once. The marginal
cost of importing MLflow (after the stage's own heavy libraries: torch, scikit-learn, pandas,
matplotlib) is counted too. The result goes to ``OUT.json``:
``{"peak_rss_mb", "mlflow_seconds", "mlflow_import_seconds", "mlflow_calls", "stage_seconds"}``, where
stage_seconds is measured from the probe's first line, so interpreter start-up is the parent's to add.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

# What each stage imports anyway, apart from MLflow; imported first so their cost is not MLflow's.
STAGE_LIBRARIES = {
    "stages.train_torch": ["numpy", "pandas", "torch", "digitflow.data.datasets", "digitflow.evaluation.figures"],
    "stages.train_sklearn": [
        "numpy",
        "pandas",
        "sklearn.linear_model",
        "digitflow.data.datasets",
        "digitflow.evaluation.figures",
    ],
    "stages.evaluate": [
        "numpy",
        "pandas",
        "torch",
        "sklearn.linear_model",
        "digitflow.data.datasets",
        "digitflow.evaluation.figures",
    ],
}
# The MLflow modules each stage uses (mlflow.pytorch imports torch, which train_sklearn never loads).
MLFLOW_MODULES = {
    "stages.train_torch": ["mlflow", "mlflow.models", "mlflow.pytorch"],
    "stages.train_sklearn": ["mlflow", "mlflow.models", "mlflow.sklearn"],
    "stages.evaluate": ["mlflow"],
}
# (module, attribute) pairs that are MLflow's work, wrapped before the stage imports them.
WRAPPED = [
    ("mlflow", "start_run"),
    ("mlflow", "log_params"),
    ("mlflow", "log_metrics"),
    ("mlflow", "log_dict"),
    ("mlflow", "log_figure"),
    ("mlflow", "log_table"),
    ("mlflow", "set_tag"),
    ("mlflow", "set_tracking_uri"),
    ("mlflow.tracking.fluent", "end_run"),
    ("mlflow.pytorch", "log_model"),
    ("mlflow.sklearn", "log_model"),
    ("digitflow.tracking.runs", "prepare_experiment"),
    ("digitflow.tracking.runs", "run_tags"),
    ("digitflow.tracking.runs", "log_step_metrics"),
    ("digitflow.tracking.training_log", "log_confusion_matrix"),
]


class Timer:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls: Counter[str] = Counter()
        self.seconds_by_call: Counter[str] = Counter()  # outermost calls only, so they add up
        self._depth = 0

    def wrap(self, name: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.calls[name] += 1
            self._depth += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    elapsed = time.perf_counter() - started
                    self.seconds += elapsed
                    self.seconds_by_call[name] += elapsed

        return timed


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since exec (``VmHWM``; ``ru_maxrss`` would include the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    stage, out = sys.argv[1], Path(sys.argv[2])
    sys.path.insert(0, str(Path.cwd()))  # the project copy the stage runs in, as `python -m` does
    timer = Timer()
    mlflow_import_seconds = 0.0
    if stage in STAGE_LIBRARIES:
        for name in STAGE_LIBRARIES[stage]:
            importlib.import_module(name)
        started = time.perf_counter()
        for name in MLFLOW_MODULES[stage]:
            importlib.import_module(name)
        mlflow_import_seconds = time.perf_counter() - started
        for module_name, attribute in WRAPPED:
            if module_name in {"mlflow.pytorch", "mlflow.sklearn"} and module_name not in MLFLOW_MODULES[stage]:
                continue
            module = importlib.import_module(module_name)
            setattr(module, attribute, timer.wrap(f"{module_name}.{attribute}", getattr(module, attribute)))
    status = 0
    try:
        runpy.run_module(stage, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    result = {
        "peak_rss_mb": peak_rss_mb(),
        "stage_seconds": time.perf_counter() - STARTED,
        "mlflow_seconds": timer.seconds + mlflow_import_seconds,
        "mlflow_call_seconds": timer.seconds,
        "mlflow_import_seconds": mlflow_import_seconds,
        "mlflow_calls": dict(timer.calls),
        "mlflow_seconds_by_call": {name: round(value, 3) for name, value in timer.seconds_by_call.most_common()},
    }
    out.write_text(json.dumps(result, indent=2))
    raise SystemExit(status)


if __name__ == "__main__":
    main()

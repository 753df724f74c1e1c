"""What the scikit-learn model's file format costs a process that loads (or saves) it: the import and the
read, each in a fresh interpreter, as `evaluate`, `digitflow predict` and `train_sklearn` pay them.

    python benchmarks/model_format.py [--repeats 5]

Formats: this project's arrays-only ``.npz`` (``digitflow.models.sklearn_model``), a plain pickle (the
format before, which runs code when loaded), and skops (MLflow's default, the MLflow copy's format). For
saving, the cost in a process that has already imported ``mlflow.sklearn``, as ``train_sklearn`` has.
Prints a Markdown table of medians, in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAKE = """
import pickle, sys
from pathlib import Path
import skops.io
from sklearn.datasets import load_digits
from digitflow.core.params import TrainSklearnParams
from digitflow.models.sklearn_model import build_model, save_model
features, labels = load_digits(return_X_y=True)
model = build_model(TrainSklearnParams()).fit(features, labels)
folder = Path(sys.argv[1])
save_model(model, folder / "model.npz")
(folder / "model.pkl").write_bytes(pickle.dumps(model, protocol=5))
skops.io.dump(model, folder / "model.skops")
"""

# Each snippet runs alone in a new interpreter; the time is from its first line to the model in hand.
LOAD = {
    "arrays (.npz, this project)": (
        "from digitflow.models.sklearn_model import load_model; load_model(FOLDER / 'model.npz')"
    ),
    "pickle (before)": "import pickle; pickle.loads((FOLDER / 'model.pkl').read_bytes())",
    "skops (MLflow's default)": "import skops.io; skops.io.load(FOLDER / 'model.skops', trusted=[])",
}
SAVE_AFTER_MLFLOW = {
    "skops.io.dumps, after mlflow.sklearn": "import skops.io; skops.io.dumps(MODEL)",
    "model_bytes (.npz), after mlflow.sklearn": (
        "from digitflow.models.sklearn_model import model_bytes; model_bytes(MODEL)"
    ),
}
TIMED = """
import sys, time
from pathlib import Path
FOLDER = Path(sys.argv[1])
{prelude}
started = time.perf_counter()
{snippet}
print(time.perf_counter() - started)
"""
MLFLOW_PRELUDE = """
import mlflow.sklearn
from sklearn.datasets import load_digits
from digitflow.core.params import TrainSklearnParams
from digitflow.models.sklearn_model import build_model
features, labels = load_digits(return_X_y=True)
MODEL = build_model(TrainSklearnParams()).fit(features, labels)
"""


def timed(snippet: str, folder: Path, prelude: str = "") -> float:
    code = TIMED.format(prelude=prelude, snippet=snippet)
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-c", MAKE, str(folder)], cwd=ROOT, check=True)
        sizes = {
            name: (folder / f"model.{ext}").stat().st_size
            for name, ext in zip(LOAD, ("npz", "pkl", "skops"), strict=True)
        }
        rows = ["| what | median s | runs (s) | file bytes |", "|---|---:|---|---:|"]
        cases = [(f"load: {name}", snippet, "") for name, snippet in LOAD.items()]
        cases += [(f"save: {name}", snippet, MLFLOW_PRELUDE) for name, snippet in SAVE_AFTER_MLFLOW.items()]
        for name, snippet, prelude in cases:
            started = time.perf_counter()
            runs = [timed(snippet, folder, prelude) for _ in range(args.repeats)]
            size = next((sizes[key] for key in sizes if name.endswith(key)), "")
            rows.append(f"| {name} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} | {size} |")
            print(f"[model_format] {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()

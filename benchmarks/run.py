"""Speed benchmark: digitflow against the obvious alternatives, side by side, in one run on this machine.

    python benchmarks/run.py            # full: MNIST, 5 notebook epochs, every pipeline scenario (~15 min)
    python benchmarks/run.py --quick    # smoke: 1 notebook epoch, sklearn on a subset, the import floor,
                                        # a params error and the digits stages alone; no `dvc repro`

Prints a Markdown table and writes every figure to ``benchmarks/results.json`` (``--output``):

1. the reference PyTorch notebook: torchvision MNIST with a per-image ``ToTensor`` transform,
   ``DataLoader`` batch 128, ``nn.Linear(784, 10)``, SGD lr 0.001: seconds per epoch, test accuracy;
2. digitflow's ``train_logistic_regression`` (MNIST settings, the stage's thread count) on the same
   data: time to reach 92% and 92.5% test accuracy and the notebook's own final accuracy, final
   accuracy; then the same training beside processes that keep every core busy;
3. scikit-learn's defaults (``LogisticRegression(max_iter=1000)`` on pixels / 255) against our
   ``train_sklearn`` settings on standardised features: fit time, test accuracy;
4. the pipeline (``benchmarks/pipeline_bench.py``), cold: the import floor, ``dvc repro`` from clean on
   digits and MNIST (local HTTP mirror), the no-op, one after a ``train_torch`` change, a params error,
   each stage alone (wall, CPU, peak RSS, MLflow's share, through ``benchmarks/stage_probe.py``), and
   ``dvc queue`` with 1 and 2 workers;
5. the warm stage server against cold stages (``benchmarks/warm_bench.py``): clean repros, a changed
   setting, a sweep trial and the README's sweep, side by side, with the import floor of the same
   minute; the server's start, memory, and what warm stages still import.

The targets and the table are in ``benchmarks/targets.py``.
Everything runs in temporary copies of the project (``git ls-files``, as a fresh clone); the MNIST files
come from ``--mnist-dir`` (default ``../shared/data/mnist``) and are never copied into the project.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.pipeline_bench import bench_pipeline, log  # noqa: E402
from benchmarks.targets import check_targets, first_reaching, markdown, notebook_comparison  # noqa: E402
from benchmarks.warm_bench import bench_warm  # noqa: E402
from digitflow.core.determinism import pin_cpu_kernels  # noqa: E402
from digitflow.core.params import Params, parse_params  # noqa: E402
from tests.support.project import serve_folder  # noqa: E402

DEFAULT_MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results.json"

NOTEBOOK = {"batch_size": 128, "lr": 0.001}
ACCURACY_MARKS = (0.92, 0.925)


# --------------------------------------------------------------------------------------------------
# MNIST in this process, prepared by the project's own functions (as fetch + preprocess + split do)


def prepare_mnist(workdir: Path, mirror: str, params: Params) -> dict[str, Any]:
    from digitflow.data.datasets import preprocess_images, split_indices
    from digitflow.data.mnist import download_mnist, load_mnist_images

    started = time.perf_counter()
    root = workdir / "mnist-raw"
    download_mnist(root, [mirror])
    images, labels, test_start = load_mnist_images(root)
    features, labels = preprocess_images(images, labels)
    split = split_indices(labels, params.split, test_start)
    log(f"MNIST prepared in {time.perf_counter() - started:.1f} s")
    return {"root": root, "images": images, "features": features, "labels": labels, "split": split}


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(predicted) == np.asarray(labels)).mean())


# --------------------------------------------------------------------------------------------------
# 1. The reference notebook


def bench_notebook(root: Path, epochs: int) -> dict[str, Any]:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(0)
    train_set = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    test_set = datasets.MNIST(str(root), train=False, download=False, transform=transforms.ToTensor())
    train_loader = DataLoader(train_set, batch_size=NOTEBOOK["batch_size"], shuffle=True)
    test_loader = DataLoader(test_set, batch_size=NOTEBOOK["batch_size"], shuffle=False)
    model = nn.Linear(28 * 28, 10)
    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()
    optimizer = torch.optim.SGD(model.parameters(), lr=NOTEBOOK["lr"])  # first use imports torch._dynamo
    optimizer_setup = time.perf_counter() - started

    rows, total = [], 0.0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            loss = criterion(model(images.view(-1, 28 * 28)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds = time.perf_counter() - started
        total += train_seconds
        started = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                correct += int((model(images.view(-1, 28 * 28)).argmax(dim=1) == labels).sum())
        rows.append(
            {
                "epoch": epoch,
                "train_seconds": round(train_seconds, 3),
                "eval_seconds": round(time.perf_counter() - started, 3),
                "seconds": round(total, 3),
                "test_accuracy": correct / len(test_set),
            }
        )
        log(f"notebook epoch {epoch}: {train_seconds:.2f} s, test accuracy {rows[-1]['test_accuracy']:.4f}")
    return {
        "n_train": len(train_set),
        "n_test": len(test_set),
        "epochs": epochs,
        "optimizer_setup_seconds": round(optimizer_setup, 3),
        "seconds_per_epoch": round(total / epochs, 3),
        "train_seconds": round(total, 3),
        "final_test_accuracy": rows[-1]["test_accuracy"],
        "curve": rows,
    }


# --------------------------------------------------------------------------------------------------
# 2. digitflow's trainer


@contextmanager
def busy_cores(n: int) -> Iterator[None]:
    """``n`` processes spinning on the CPU for the duration: the "busy machine" of the targets."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def bench_train_torch(mnist: dict[str, Any], params: Params, train_rows: np.ndarray) -> dict[str, Any]:
    import torch
    import torch._dynamo  # as stages/train_torch.py: the first optimizer's import is not training

    from digitflow.core.determinism import set_torch_threads
    from digitflow.models.torch_model import train_logistic_regression

    set_torch_threads(params.train_torch.threads)  # as the stage does

    features, labels, split = mnist["features"], mnist["labels"], mnist["split"]
    x_test = torch.as_tensor(features[split.test])
    y_test = torch.as_tensor(labels[split.test])
    curve: list[dict[str, float]] = []
    excluded = [0.0]  # seconds spent in the callback, not training

    def on_epoch(epoch: int, model: torch.nn.Module) -> None:
        entered = time.perf_counter()
        with torch.no_grad():
            test_accuracy = float((model(x_test).argmax(dim=1) == y_test).float().mean())
        curve.append(
            {"epoch": epoch, "seconds": round(entered - started - excluded[0], 3), "test_accuracy": test_accuracy}
        )
        excluded[0] += time.perf_counter() - entered

    x_train, y_train = features[train_rows], labels[train_rows]
    x_val, y_val = features[split.val], labels[split.val]
    started = time.perf_counter()
    train_logistic_regression(
        x_train, y_train, x_val, y_val, params.train_torch, torch.device("cpu"), progress=False, on_epoch=on_epoch
    )
    total = time.perf_counter() - started - excluded[0]
    log(f"train_torch: {total:.2f} s, test accuracy {curve[-1]['test_accuracy']:.4f}")
    return {
        "threads": torch.get_num_threads(),
        "params": params.train_torch.model_dump(),
        "n_train": len(train_rows),
        "train_seconds": round(total, 3),
        "seconds_per_epoch": round(total / len(curve), 3),
        "final_test_accuracy": curve[-1]["test_accuracy"],
        "seconds_to": {str(mark): first_reaching(curve, mark) for mark in ACCURACY_MARKS},
        "curve": curve,
    }


def bench_train_torch_busy(mnist: dict[str, Any], params: Params, train_rows: np.ndarray) -> dict[str, Any]:
    """The same training while two other processes keep both cores busy."""
    cores = os.cpu_count() or 2
    with busy_cores(cores):
        busy = bench_train_torch(mnist, params, train_rows)
    log(f"train_torch beside {cores} busy processes: {busy['train_seconds']:.2f} s")
    return {"busy_processes": cores, "train_seconds": busy["train_seconds"], "threads": busy["threads"]}


# --------------------------------------------------------------------------------------------------
# 3. scikit-learn


def bench_sklearn(mnist: dict[str, Any], params: Params, train_rows: np.ndarray) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from digitflow.models.sklearn_model import build_model

    images, features, labels, split = mnist["images"], mnist["features"], mnist["labels"], mnist["split"]
    pixels = images.reshape(len(images), -1) / 255.0
    results = {}
    for name, model, x in (
        ("defaults", LogisticRegression(max_iter=1000), pixels),
        ("ours", build_model(params.train_sklearn, seed=params.split.seed), features),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            model.fit(x[train_rows], labels[train_rows])
            seconds = time.perf_counter() - started
        fitted = model[-1] if hasattr(model, "steps") else model
        results[name] = {
            "fit_seconds": round(seconds, 3),
            "n_iter": int(np.max(fitted.n_iter_)),
            "test_accuracy": accuracy(model.predict(x[split.test]), labels[split.test]),
            "features": "pixels / 255, float64"
            if name == "defaults"
            else f"raw float32, {params.train_sklearn.scaling} in the model",
            "settings": fitted.get_params(),
        }
        log(f"sklearn {name}: {seconds:.2f} s, test accuracy {results[name]['test_accuracy']:.4f}")
    results["n_train"] = len(train_rows)
    results["fit_ratio"] = round(results["ours"]["fit_seconds"] / results["defaults"]["fit_seconds"], 4)
    return results


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: subsets, no dvc repro (< 1 minute)")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR, help="folder with the 4 MNIST .gz files")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default %(default)s)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    pin_cpu_kernels()  # the kernels the stages use (digitflow/core/determinism.py), before PyTorch loads MKL

    import torch

    # The MNIST settings: params.yaml as `-S data.dataset=mnist` would make it (its per-dataset blocks).
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = parse_params({**raw, "data": {**raw["data"], "dataset": "mnist"}})
    results: dict[str, Any] = {
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
    }
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="digitflow-bench-") as tmp, serve_folder(args.mnist_dir) as mirror:
        workdir = Path(tmp)
        # Pipeline first, on a quiet process: the in-process benchmarks below hold ~1 GB of arrays.
        results["pipeline"] = bench_pipeline(workdir, mirror, args.quick)
        results["warm"] = bench_warm(workdir, mirror, args.quick)
        mnist = prepare_mnist(workdir, mirror, params)
        train_rows = mnist["split"].train
        results["train_torch"] = bench_train_torch(mnist, params, train_rows)
        if not args.quick:
            results["train_torch_busy"] = bench_train_torch_busy(mnist, params, train_rows)
            two = params.model_copy(update={"train_torch": params.train_torch.model_copy(update={"threads": 2})})
            results["train_torch_2_threads"] = bench_train_torch(mnist, two, train_rows)
        torch.set_num_threads(results["machine"]["torch_threads"])  # the notebook runs with PyTorch's default
        results["notebook"] = bench_notebook(mnist["root"], epochs=1 if args.quick else 5)
        # scikit-learn's defaults need ~250 lbfgs iterations on all of MNIST; quick mode fits a subset.
        results["sklearn"] = bench_sklearn(mnist, params, train_rows[:3000] if args.quick else train_rows)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["benchmark_seconds"] = round(time.perf_counter() - begun, 1)
    results["train_torch"].update(notebook_comparison(results))
    results["targets"] = check_targets(results)
    table = markdown(results)
    results["markdown"] = table
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()

"""Speed benchmark: digitflow against the obvious alternatives, side by side, in one run on this machine.

    python benchmarks/run.py            # full: MNIST, 5 notebook epochs, every `dvc repro` scenario
    python benchmarks/run.py --quick    # smoke: 1 notebook epoch, sklearn on a subset, digits stages only,
                                        # no `dvc repro`

Prints a Markdown table and writes every figure to ``benchmarks/results.json`` (``--output``):

1. the reference PyTorch notebook: torchvision MNIST with a per-image ``ToTensor`` transform,
   ``DataLoader`` batch 128, ``nn.Linear(784, 10)``, SGD lr 0.001: seconds per epoch, test accuracy;
2. digitflow's ``train_logistic_regression`` (MNIST settings below) on the same data: time to reach
   92% and 92.5% test accuracy and the notebook's own final accuracy, final accuracy;
3. scikit-learn's defaults (``LogisticRegression(max_iter=1000)`` on pixels / 255) against our
   ``train_sklearn`` settings on standardised features: fit time, test accuracy;
4. the pipeline: ``dvc repro`` on MNIST from a clean copy of the project (local HTTP mirror), on
   digits, a no-op ``dvc repro`` and one after a ``train_torch`` param change: wall time each;
5. MLflow's share of each stage's wall time, 6. each stage's peak resident memory: every stage is run
   once more, alone, through ``benchmarks/stage_probe.py`` (see there what counts as MLflow time).

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
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from digitflow import testing  # noqa: E402
from digitflow.params import Params, parse_params  # noqa: E402
from digitflow.testing import serve_folder, set_params  # noqa: E402

DEFAULT_MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results.json"
PROBE = ROOT / "benchmarks" / "stage_probe.py"
STAGES = ("fetch", "preprocess", "split", "train_sklearn", "train_torch", "evaluate", "report")

NOTEBOOK = {"batch_size": 128, "lr": 0.001}
ACCURACY_MARKS = (0.92, 0.925)

# Targets on two CPU cores.
TARGETS = {
    "torch_accuracy": 0.925,
    "torch_train_seconds": 3.0,
    "torch_speedup_vs_notebook": 20.0,
    "sklearn_accuracy": 0.925,
    "sklearn_fit_fraction_of_defaults": 0.1,
    "repro_mnist_clean_seconds": 45.0,
    "repro_digits_clean_seconds": 15.0,
    "repro_noop_seconds": 1.5,
    "mlflow_share_of_training_stage": 0.10,
    "stage_peak_rss_mb": 1536.0,
}


def log(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Project copies, commands and the MNIST mirror


def make_project_copy(destination: Path, **sections: dict[str, Any]) -> Path:
    """A fresh clone-like copy of the project, committed, with ``sections`` merged into params.yaml."""
    return testing.make_project_copy(ROOT, destination, **sections)


def command_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "PYTEST_"))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", **extra)
    return env


def timed_command(cwd: Path, command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command``; its wall time, output, and ``ru_maxrss`` (which on Linux also counts the RSS of
    this process at fork time, so the probe's own ``VmHWM`` is preferred)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode} in {cwd}:\n{text[-4000:]}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "output": text}


def dvc_repro(project: Path, env: dict[str, str]) -> dict[str, Any]:
    result = timed_command(project, ["dvc", "repro"], env)
    ran = [line.split("'")[1] for line in result["output"].splitlines() if line.startswith("Running stage '")]
    return {"seconds": round(result["seconds"], 2), "stages_run": ran}


# --------------------------------------------------------------------------------------------------
# MNIST in this process, prepared by the project's own functions (as fetch + preprocess + split do)


def prepare_mnist(workdir: Path, mirror: str, params: Params) -> dict[str, Any]:
    from digitflow.data import preprocess_images, split_indices
    from digitflow.mnist import download_mnist, load_mnist_images

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


def first_reaching(curve: list[dict[str, float]], mark: float) -> float | None:
    """Cumulative seconds at the first epoch whose test accuracy reaches ``mark``, else None."""
    for point in curve:
        if point["test_accuracy"] >= mark:
            return point["seconds"]
    return None


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


def bench_train_torch(mnist: dict[str, Any], params: Params, train_rows: np.ndarray) -> dict[str, Any]:
    import torch

    from digitflow.torch_model import train_logistic_regression

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
        "params": params.train_torch.model_dump(),
        "n_train": len(train_rows),
        "train_seconds": round(total, 3),
        "seconds_per_epoch": round(total / len(curve), 3),
        "final_test_accuracy": curve[-1]["test_accuracy"],
        "seconds_to": {str(mark): first_reaching(curve, mark) for mark in ACCURACY_MARKS},
        "curve": curve,
    }


# --------------------------------------------------------------------------------------------------
# 3. scikit-learn


def bench_sklearn(mnist: dict[str, Any], params: Params, train_rows: np.ndarray) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from digitflow.sklearn_model import build_model

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
# 4-6. The pipeline


def probe_stages(project: Path, env: dict[str, str], stages: tuple[str, ...]) -> dict[str, Any]:
    """Run each stage alone, in order, through the probe: wall time, peak RSS, MLflow seconds."""
    rows = {}
    for stage in stages:
        out = project / f".probe-{stage}.json"
        result = timed_command(project, [sys.executable, str(PROBE), f"stages.{stage}", str(out)], env)
        probe = json.loads(out.read_text())
        out.unlink()
        rows[stage] = {
            "seconds": round(result["seconds"], 2),
            "peak_rss_mb": round(probe["peak_rss_mb"] or result["peak_rss_mb"], 1),
            "mlflow_seconds": round(probe["mlflow_seconds"], 2),
            "mlflow_import_seconds": round(probe["mlflow_import_seconds"], 2),
            "mlflow_share": round(probe["mlflow_seconds"] / result["seconds"], 3),
            "mlflow_calls": probe["mlflow_calls"],
            "mlflow_seconds_by_call": probe["mlflow_seconds_by_call"],
        }
        log(f"stage {stage}: {rows[stage]['seconds']:.1f} s, {rows[stage]['peak_rss_mb']:.0f} MB")
    return rows


def bench_pipeline(workdir: Path, mirror: str, quick: bool) -> dict[str, Any]:
    env = command_env(DIGITFLOW_MNIST_MIRRORS=mirror)
    results: dict[str, Any] = {}
    if quick:
        digits = make_project_copy(workdir / "digits")
        results["digits_stages"] = probe_stages(digits, env, STAGES[:5])
        return results

    mnist = make_project_copy(workdir / "mnist", data={"dataset": "mnist"})
    results["repro_mnist_clean"] = dvc_repro(mnist, env)
    log(f"dvc repro MNIST from clean: {results['repro_mnist_clean']['seconds']} s")
    results["repro_mnist_noop"] = dvc_repro(mnist, env)
    seed = yaml.safe_load((mnist / "params.yaml").read_text())["train_torch"]["seed"]
    set_params(mnist, train_torch={"seed": seed + 1})
    results["repro_mnist_train_torch_param_change"] = dvc_repro(mnist, env)
    log(f"dvc repro after a train_torch change: {results['repro_mnist_train_torch_param_change']['seconds']} s")

    digits = make_project_copy(workdir / "digits")
    results["repro_digits_clean"] = dvc_repro(digits, env)
    log(f"dvc repro digits from clean: {results['repro_digits_clean']['seconds']} s")
    results["repro_digits_noop"] = dvc_repro(digits, env)

    results["mnist_stages"] = probe_stages(mnist, env, STAGES)
    results["digits_stages"] = probe_stages(digits, env, STAGES)
    return results


# --------------------------------------------------------------------------------------------------
# Targets and the table


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    torch_run, notebook, sk = results["train_torch"], results["notebook"], results["sklearn"]
    pipeline = results["pipeline"]
    to_notebook = first_reaching(torch_run["curve"], notebook["final_test_accuracy"])
    speedup = notebook["train_seconds"] / to_notebook if to_notebook else None
    results["train_torch"]["seconds_to_notebook_accuracy"] = to_notebook
    results["train_torch"]["speedup_vs_notebook"] = round(speedup, 1) if speedup else None

    def target(name: str, goal: str, measured: Any, met: bool | None) -> dict[str, Any]:
        return {"name": name, "target": goal, "measured": measured, "met": met}

    rows = [
        target(
            "train_torch MNIST test accuracy",
            f">= {TARGETS['torch_accuracy']}",
            round(torch_run["final_test_accuracy"], 4),
            torch_run["final_test_accuracy"] >= TARGETS["torch_accuracy"],
        ),
        target(
            "train_torch training seconds",
            f"<= {TARGETS['torch_train_seconds']}",
            torch_run["train_seconds"],
            torch_run["train_seconds"] <= TARGETS["torch_train_seconds"],
        ),
        target(
            "train_torch speed-up to the notebook's final accuracy",
            f">= {TARGETS['torch_speedup_vs_notebook']}x",
            results["train_torch"]["speedup_vs_notebook"],
            bool(speedup and speedup >= TARGETS["torch_speedup_vs_notebook"]),
        ),
        target(
            "train_sklearn MNIST test accuracy",
            f">= {TARGETS['sklearn_accuracy']}",
            round(sk["ours"]["test_accuracy"], 4),
            sk["ours"]["test_accuracy"] >= TARGETS["sklearn_accuracy"],
        ),
        target(
            "train_sklearn fit / sklearn defaults' fit",
            f"<= {TARGETS['sklearn_fit_fraction_of_defaults']}",
            sk["fit_ratio"],
            sk["fit_ratio"] <= TARGETS["sklearn_fit_fraction_of_defaults"],
        ),
    ]
    for key, name, limit in (
        ("repro_mnist_clean", "dvc repro MNIST from clean (s)", "repro_mnist_clean_seconds"),
        ("repro_digits_clean", "dvc repro digits from clean (s)", "repro_digits_clean_seconds"),
        ("repro_mnist_noop", "no-op dvc repro (s)", "repro_noop_seconds"),
    ):
        seconds = pipeline.get(key, {}).get("seconds")
        met = None if seconds is None else seconds <= TARGETS[limit]
        rows.append(target(name, f"<= {TARGETS[limit]}", seconds, met))
    stage_sets = [value for key, value in pipeline.items() if key.endswith("_stages")]
    shares = [s[t]["mlflow_share"] for s in stage_sets for t in ("train_sklearn", "train_torch") if t in s]
    peaks = [row["peak_rss_mb"] for s in stage_sets for row in s.values()]
    for name, goal, values, limit in (
        (
            "MLflow share of a training stage (worst)",
            f"<= {TARGETS['mlflow_share_of_training_stage']:.0%}",
            shares,
            TARGETS["mlflow_share_of_training_stage"],
        ),
        ("peak RSS of any stage (MB)", f"<= {TARGETS['stage_peak_rss_mb']:.0f}", peaks, TARGETS["stage_peak_rss_mb"]),
    ):
        worst = max(values) if values else None
        rows.append(target(name, goal, worst, None if worst is None else worst <= limit))
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    nb, ours, sk, pipeline = results["notebook"], results["train_torch"], results["sklearn"], results["pipeline"]
    mode = "quick (smoke) mode, subsets" if results["quick"] else "full mode"
    lines = [
        f"Measured {results['started']} on {results['machine']['cpus']} CPU cores ({mode}); "
        f"load average {results['machine']['loadavg_before']} before, {results['machine']['loadavg_after']} after.",
        "",
        "| Training (MNIST) | images | s / epoch | training s | test accuracy | ratio |",
        "|---|---|---|---|---|---|",
        f"| Reference notebook: ToTensor + DataLoader(128), SGD lr 0.001, {nb['epochs']} epochs | {nb['n_train']} "
        f"| {_fmt(nb['seconds_per_epoch'])} | {_fmt(nb['train_seconds'])} | {nb['final_test_accuracy']:.4f} | 1x |",
        f"| digitflow train_torch ({_torch_settings(ours['params'])}) | {ours['n_train']} "
        f"| {_fmt(ours['seconds_per_epoch'])} | {_fmt(ours['train_seconds'])} | {ours['final_test_accuracy']:.4f} "
        f"| {_fmt(ours.get('speedup_vs_notebook'), 1)}x faster to the notebook's accuracy "
        f"({_fmt(ours.get('seconds_to_notebook_accuracy'))} s) |",
        f"| train_torch: time to 92% / 92.5% test accuracy | | | {_fmt(ours['seconds_to']['0.92'])} / "
        f"{_fmt(ours['seconds_to']['0.925'])} | | |",
        f"| scikit-learn defaults: LogisticRegression(max_iter=1000), pixels/255 | {sk['n_train']} | "
        f"{sk['defaults']['n_iter']} iterations | {_fmt(sk['defaults']['fit_seconds'])} | "
        f"{sk['defaults']['test_accuracy']:.4f} | 1x |",
        f"| digitflow train_sklearn ({_sk_settings(sk['ours']['settings'])}, standardised) | {sk['n_train']} | "
        f"{sk['ours']['n_iter']} iterations | {_fmt(sk['ours']['fit_seconds'])} | {sk['ours']['test_accuracy']:.4f} "
        f"| {_fmt(sk['fit_ratio'], 3)} of the defaults' fit time |",
        "",
    ]
    repro = [
        ("`dvc repro`, MNIST, clean workspace", "repro_mnist_clean"),
        ("`dvc repro`, digits, clean workspace", "repro_digits_clean"),
        ("`dvc repro`, nothing changed (MNIST)", "repro_mnist_noop"),
        ("`dvc repro`, nothing changed (digits)", "repro_digits_noop"),
        ("`dvc repro` after one train_torch param change (MNIST)", "repro_mnist_train_torch_param_change"),
    ]
    if any(key in pipeline for _, key in repro):
        lines += ["| Pipeline | wall s | stages run |", "|---|---|---|"]
        for title, key in repro:
            if key in pipeline:
                lines.append(f"| {title} | {_fmt(pipeline[key]['seconds'])} | {len(pipeline[key]['stages_run'])} |")
        lines.append("")
    for key, title in (("mnist_stages", "MNIST"), ("digits_stages", "digits")):
        if key not in pipeline:
            continue
        lines += [
            f"| Stage alone ({title}) | wall s | peak RSS MB | MLflow s | MLflow share |",
            "|---|---|---|---|---|",
        ]
        for stage, row in pipeline[key].items():
            share = f"{row['mlflow_share']:.0%}" if row["mlflow_seconds"] else "-"
            lines.append(
                f"| {stage} | {_fmt(row['seconds'])} | {row['peak_rss_mb']:.0f} | {_fmt(row['mlflow_seconds'])} "
                f"| {share} |"
            )
        lines.append("")
    lines += ["| Target | goal | measured | met |", "|---|---|---|---|"]
    for row in results["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['name']} | {row['target']} | {_fmt(row['measured'], 3)} | {met} |")
    return "\n".join(lines) + "\n"


def _torch_settings(params: dict[str, Any]) -> str:
    return (
        f"{params['optimizer']} lr {params['lr']:g}, batch {params['batch_size']}, {params['epochs']} epochs, "
        f"wd {params['weight_decay']:g}"
    )


def _sk_settings(settings: dict[str, Any]) -> str:
    return f"{settings['solver']}, C {settings['C']:g}, tol {settings['tol']:g}"


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: subsets, no dvc repro (< 1 minute)")
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR, help="folder with the 4 MNIST .gz files")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON (default %(default)s)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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
        mnist = prepare_mnist(workdir, mirror, params)
        train_rows = mnist["split"].train
        results["train_torch"] = bench_train_torch(mnist, params, train_rows)
        results["notebook"] = bench_notebook(mnist["root"], epochs=1 if args.quick else 5)
        # scikit-learn's defaults need ~250 lbfgs iterations on all of MNIST; quick mode fits a subset.
        results["sklearn"] = bench_sklearn(mnist, params, train_rows[:3000] if args.quick else train_rows)
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["benchmark_seconds"] = round(time.perf_counter() - begun, 1)
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

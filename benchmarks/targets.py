"""The benchmark's targets (issue "Speed", on a quiet two-core machine) and its Markdown table.

Pure functions of the results dictionary that ``benchmarks/run.py`` builds: nothing here measures, and
nothing here changes the results it is given.
"""

from __future__ import annotations

from typing import Any

from benchmarks.warm_report import warm_markdown, warm_targets

TARGETS = {
    "torch_accuracy": 0.925,
    "torch_train_seconds": 1.5,
    "torch_speedup_vs_notebook": 100.0,
    "torch_busy_slowdown": 3.0,
    "sklearn_accuracy": 0.925,
    "sklearn_fit_fraction_of_defaults": 0.1,
    "repro_digits_clean_import_floors": 4.0,
    "repro_mnist_clean_seconds": 30.0,
    "repro_noop_seconds": 1.0,
    "params_error_seconds": 2.0,
    "mlflow_share_of_training_stage": 0.15,
    "stage_peak_rss_mb": 1536.0,
}


def first_reaching(curve: list[dict[str, float]], mark: float) -> float | None:
    """Cumulative seconds at the first epoch whose test accuracy reaches ``mark``, else None."""
    for point in curve:
        if point["test_accuracy"] >= mark:
            return point["seconds"]
    return None


def notebook_comparison(results: dict[str, Any]) -> dict[str, float | None]:
    """How long train_torch took to reach the notebook's final test accuracy, and the speed-up over the
    notebook's whole training that gives (both None if it never reached it)."""
    notebook = results["notebook"]
    seconds = first_reaching(results["train_torch"]["curve"], notebook["final_test_accuracy"])
    speedup = round(notebook["train_seconds"] / seconds, 1) if seconds else None
    return {"seconds_to_notebook_accuracy": seconds, "speedup_vs_notebook": speedup}


def _target(name: str, goal: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"name": name, "target": goal, "measured": measured, "met": met}


def _at_most(name: str, measured: float | None, limit: float, goal: str | None = None) -> dict[str, Any]:
    return _target(name, goal or f"<= {limit:g}", measured, None if measured is None else measured <= limit)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: name, goal, measured value, met (None where this run did not measure it)."""
    torch_run, sk, pipeline = results["train_torch"], results["sklearn"], results["pipeline"]
    speedup = notebook_comparison(results)["speedup_vs_notebook"]
    accuracy = round(torch_run["final_test_accuracy"], 4)
    rows = [
        _target(
            "train_torch MNIST test accuracy",
            f">= {TARGETS['torch_accuracy']}",
            accuracy,
            accuracy >= TARGETS["torch_accuracy"],
        ),
        _at_most("train_torch MNIST training seconds", torch_run["train_seconds"], TARGETS["torch_train_seconds"]),
        _target(
            "train_torch speed-up to the notebook's final accuracy",
            f">= {TARGETS['torch_speedup_vs_notebook']:g}x",
            speedup,
            speedup is not None and speedup >= TARGETS["torch_speedup_vs_notebook"],  # never reached: not met
        ),
    ]
    busy = results.get("train_torch_busy")
    slowdown = round(busy["train_seconds"] / torch_run["train_seconds"], 2) if busy else None
    rows.append(
        _at_most(
            "train_torch training, busy / quiet",
            slowdown,
            TARGETS["torch_busy_slowdown"],
            f"<= {TARGETS['torch_busy_slowdown']:g}x",
        )
    )
    rows += [
        _target(
            "train_sklearn MNIST test accuracy",
            f">= {TARGETS['sklearn_accuracy']}",
            round(sk["ours"]["test_accuracy"], 4),
            sk["ours"]["test_accuracy"] >= TARGETS["sklearn_accuracy"],
        ),
        _at_most(
            "train_sklearn fit / sklearn defaults' fit", sk["fit_ratio"], TARGETS["sklearn_fit_fraction_of_defaults"]
        ),
    ]
    floor = pipeline["import_floor"]["seconds"]
    digits = pipeline.get("repro_digits_clean", {}).get("seconds")
    rows.append(
        _at_most(
            "dvc repro digits from clean / import floor",
            round(digits / floor, 2) if digits else None,
            TARGETS["repro_digits_clean_import_floors"],
            f"<= {TARGETS['repro_digits_clean_import_floors']:g}x ({floor:.2f} s)",
        )
    )
    rows += [
        _at_most(
            "dvc repro MNIST from clean (s)",
            pipeline.get("repro_mnist_clean", {}).get("seconds"),
            TARGETS["repro_mnist_clean_seconds"],
        ),
        _at_most(
            "no-op dvc repro, first after a repro (s)",
            pipeline.get("repro_digits_noop", {}).get("seconds"),
            TARGETS["repro_noop_seconds"],
        ),
        _at_most(
            "no-op dvc repro, again (median of 3, s)",
            pipeline.get("repro_digits_noop_again", {}).get("seconds"),
            TARGETS["repro_noop_seconds"],
        ),
        _at_most(
            "params error reported (s)",
            pipeline.get("params_error", {}).get("seconds"),
            TARGETS["params_error_seconds"],
        ),
    ]
    stage_sets = [value for key, value in pipeline.items() if key.endswith("_stages")]
    shares = [s[t]["mlflow_share"] for s in stage_sets for t in ("train_sklearn", "train_torch") if t in s]
    peaks = [row["peak_rss_mb"] for s in stage_sets for row in s.values()]
    rows += [
        _at_most(
            "MLflow share of a training stage (worst)",
            max(shares) if shares else None,
            TARGETS["mlflow_share_of_training_stage"],
            f"<= {TARGETS['mlflow_share_of_training_stage']:.0%}",
        ),
        _at_most("peak RSS of any stage (MB)", max(peaks) if peaks else None, TARGETS["stage_peak_rss_mb"]),
    ]
    return rows + warm_targets(results.get("warm"))


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _torch_settings(params: dict[str, Any]) -> str:
    return (
        f"{params['optimizer']} lr {params['lr']:g} {params['lr_schedule']}, "
        f"batch {params['batch_size']}, {params['epochs']} epochs, "
        f"wd {params['weight_decay']:g}"
    )


def _sk_settings(settings: dict[str, Any]) -> str:
    return f"{settings['solver']}, C {settings['C']:g}, tol {settings['tol']:g}"


def _training_table(results: dict[str, Any]) -> list[str]:
    nb, ours, sk = results["notebook"], results["train_torch"], results["sklearn"]
    to_notebook = notebook_comparison(results)
    lines = [
        "| Training (MNIST) | images | s / epoch | training s | test accuracy | ratio |",
        "|---|---|---|---|---|---|",
        f"| Reference notebook: ToTensor + DataLoader(128), SGD lr 0.001, {nb['epochs']} epochs | {nb['n_train']} "
        f"| {_fmt(nb['seconds_per_epoch'])} | {_fmt(nb['train_seconds'])} | {nb['final_test_accuracy']:.4f} | 1x |",
        f"| digitflow train_torch ({_torch_settings(ours['params'])}, {ours['threads']} thread) | {ours['n_train']} "
        f"| {_fmt(ours['seconds_per_epoch'])} | {_fmt(ours['train_seconds'])} | {ours['final_test_accuracy']:.4f} "
        f"| {_fmt(to_notebook['speedup_vs_notebook'], 1)}x faster to the notebook's accuracy "
        f"({_fmt(to_notebook['seconds_to_notebook_accuracy'])} s) |",
        f"| train_torch: time to 92% / 92.5% test accuracy | | | {_fmt(ours['seconds_to']['0.92'])} / "
        f"{_fmt(ours['seconds_to']['0.925'])} | | |",
    ]
    if "train_torch_2_threads" in results:
        two = results["train_torch_2_threads"]
        lines.append(
            f"| the same with train_torch.threads 2 | {two['n_train']} | {_fmt(two['seconds_per_epoch'])} "
            f"| {_fmt(two['train_seconds'])} | {two['final_test_accuracy']:.4f} | |"
        )
    if "train_torch_busy" in results:
        busy = results["train_torch_busy"]
        lines.append(
            f"| train_torch beside {busy['busy_processes']} processes spinning on the CPU | {ours['n_train']} | "
            f"| {_fmt(busy['train_seconds'])} | | {busy['train_seconds'] / ours['train_seconds']:.1f}x its quiet time |"
        )
    lines += [
        f"| scikit-learn defaults: LogisticRegression(max_iter=1000), pixels/255 | {sk['n_train']} | "
        f"{sk['defaults']['n_iter']} iterations | {_fmt(sk['defaults']['fit_seconds'])} | "
        f"{sk['defaults']['test_accuracy']:.4f} | 1x |",
        f"| digitflow train_sklearn ({_sk_settings(sk['ours']['settings'])}, standardised) | {sk['n_train']} | "
        f"{sk['ours']['n_iter']} iterations | {_fmt(sk['ours']['fit_seconds'])} | {sk['ours']['test_accuracy']:.4f} "
        f"| {_fmt(sk['fit_ratio'], 3)} of the defaults' fit time |",
        "",
    ]
    return lines


REPRO_ROWS = (
    ("`dvc repro`, digits, clean workspace", "repro_digits_clean"),
    ("`dvc repro`, MNIST, clean workspace", "repro_mnist_clean"),
    ("`dvc repro`, nothing changed (digits), first after the clean run", "repro_digits_noop"),
    ("`dvc repro`, nothing changed (digits), again: median of 3", "repro_digits_noop_again"),
    ("`dvc repro`, nothing changed (MNIST)", "repro_mnist_noop"),
    ("`dvc repro` after one train_torch param change (MNIST)", "repro_mnist_train_torch_param_change"),
    ("`dvc repro` with a bad value in params.yaml, until its message", "params_error"),
)


def _pipeline_table(pipeline: dict[str, Any]) -> list[str]:
    floor = pipeline["import_floor"]
    lines = [
        "| Pipeline | wall s | CPU s | stages run |",
        "|---|---|---|---|",
        f"| import floor: `{floor['command']}` | {_fmt(floor['seconds'])} | {_fmt(floor['cpu_seconds'])} | |",
    ]
    for title, key in REPRO_ROWS:
        if key in pipeline:
            row = pipeline[key]
            ran = len(row["stages_run"]) if "stages_run" in row else "fails in validate"
            lines.append(f"| {title} | {_fmt(row['seconds'])} | {_fmt(row['cpu_seconds'])} | {ran} |")
    lines.append("")
    for key, title in (("digits_stages", "digits"), ("mnist_stages", "MNIST")):
        if key not in pipeline:
            continue
        lines += [
            f"| Stage alone ({title}) | wall s | CPU s | peak RSS MB | MLflow s | MLflow share |",
            "|---|---|---|---|---|---|",
        ]
        for stage, row in pipeline[key].items():
            share = f"{row['mlflow_share']:.0%}" if row["mlflow_seconds"] else "-"
            lines.append(
                f"| {stage} | {_fmt(row['seconds'])} | {_fmt(row['cpu_seconds'])} | {row['peak_rss_mb']:.0f} "
                f"| {_fmt(row['mlflow_seconds'])} | {share} |"
            )
        lines.append("")
    if "queue" in pipeline:
        lines += ["| `dvc queue` (digits, new train_torch seeds) | experiments | wall s |", "|---|---|---|"]
        for queue in pipeline["queue"]:
            lines.append(f"| {queue['workers']} worker(s) | {queue['experiments']} | {_fmt(queue['seconds'], 1)} |")
        lines.append("")
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The whole table: machine, training, pipeline, then each target with its verdict (``check_targets``)."""
    machine = results["machine"]
    mode = "quick (smoke) mode, subsets" if results["quick"] else "full mode"
    lines = [
        f"Measured {results['started']} on {machine['cpus']} CPU cores ({machine['platform']}; {mode}); "
        f"load average {machine['loadavg_before']} before, {machine['loadavg_after']} after.",
        "",
        *_training_table(results),
        *_pipeline_table(results["pipeline"]),
        *warm_markdown(results.get("warm")),
        "| Target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for row in check_targets(results):
        met = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['name']} | {row['target']} | {_fmt(row['measured'], 3)} | {met} |")
    return "\n".join(lines) + "\n"

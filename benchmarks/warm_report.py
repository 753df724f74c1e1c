"""The warm stage server's targets (issue "Pay the imports once", on the two-core machine) and its
Markdown table: pure functions of ``results["warm"]``, which ``benchmarks/warm_bench.py`` measures."""

from __future__ import annotations

from typing import Any

# Multiples of the import floor F measured in the same minute, warm; the sweep's as cold / warm.
WARM_TARGETS = {
    "repro_digits_clean": 3.0,
    "exp_run": 1.0,
    "params_edit_repro": 1.0,
    "sweep_trial": 1.5,
    "repro_mnist_clean": 4.0,
    "six_trial_sweep_speedup": 3.0,
}

ROWS = (
    ("`dvc repro`, clean digits", ("repro_digits_clean",)),
    ("`dvc exp run -S train_sklearn.C=0.5` after a repro", ("changed_setting", "exp_run")),
    ("params.yaml edited (train_sklearn.C), `dvc repro`", ("changed_setting", "params_edit_repro")),
    ("one sweep trial, 5 epochs (the trial, from the study)", ("sweep_trial",)),
    ("README's sweep: 6 trials of 5 epochs, two workers", ("six_trial_sweep",)),
    ("`dvc repro`, clean MNIST", ("repro_mnist_clean",)),
)


def _get(warm: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    for key in path:
        warm = warm.get(key) if isinstance(warm, dict) else None
    return warm


def warm_targets(warm: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per target: name, goal, measured, met (None where not measured: quick mode)."""
    warm = warm or {}

    def floors(name: str, path: tuple[str, ...]) -> dict[str, Any]:
        found = _get(warm, path)
        limit = WARM_TARGETS[path[-1]]
        measured = found["warm_floors"] if found else None
        goal = f"<= {limit:g}x" + (f" ({found['floor']:.2f} s)" if found else "")  # multiples of F
        return {"name": name, "target": goal, "measured": measured, "met": None if found is None else measured <= limit}

    rows = [
        floors("warm: dvc repro digits from clean / F", ("repro_digits_clean",)),
        floors("warm: dvc exp run -S train_sklearn.C=0.5 / F", ("changed_setting", "exp_run")),
        floors("warm: params.yaml edit + dvc repro / F", ("changed_setting", "params_edit_repro")),
        floors("warm: one sweep trial of 5 epochs / F", ("sweep_trial",)),
        floors("warm: dvc repro MNIST from clean / F", ("repro_mnist_clean",)),
    ]
    sweep = warm.get("six_trial_sweep")
    limit = WARM_TARGETS["six_trial_sweep_speedup"]
    rows.append(
        {
            "name": "README's six-trial sweep, cold / warm",
            "target": f">= {limit:g}x",
            "measured": sweep["speedup"] if sweep else None,
            "met": None if sweep is None else sweep["speedup"] >= limit,
        }
    )
    return rows


def _row(title: str, found: dict[str, Any]) -> str:
    in_stages = found.get("warm_in_stages")
    return (
        f"| {title} | {found['floor']:.2f} | {found['cold']:.2f} ({found['cold_floors']:.1f} F) "
        f"| {found['warm']:.2f} ({found['warm_floors']:.1f} F) | {'' if in_stages is None else f'{in_stages:.2f}'} "
        f"| {found['speedup']:.1f}x |"
    )


def warm_markdown(warm: dict[str, Any] | None) -> list[str]:
    if not warm:
        return []
    memory = warm["server_memory"]
    lines = [
        "| Warm stage server | F s | cold s | warm s | of which in the warm stages s | cold / warm |",
        "|---|---|---|---|---|---|",
    ]
    for title, path in ROWS:
        found = _get(warm, path)
        if found:
            lines.append(_row(title, found))
    for stage, found in (warm.get("stages") or {}).items():
        lines.append(_row(f"`python -m stages.{stage}` alone", found))
    digits = warm.get("repro_digits_clean")
    if digits:
        lines.append(
            f"| `dvc repro`, clean digits, as a first run (starts the server) | {digits['floor']:.2f} | "
            f"| {digits['warm_first_run']:.2f} ({digits['warm_first_run_floors']:.1f} F) | | |"
        )
    lines += [
        "",
        f"Server start {warm['server_start_seconds']:.1f} s; its memory when idle {memory['rss_mb']:.0f} MB "
        f"resident, {memory['pss_mb']:.0f} MB proportional"
        + (
            f"; peak of server and stage children during the warm digits repro {digits['peak_memory']['pss_mb']:.0f} "
            f"MB proportional ({digits['peak_memory']['processes']} processes)."
            if digits
            else "."
        ),
        "",
    ]
    if digits and digits.get("warm_stages"):
        lines += ["| Warm stage (digits) | s in the child | modules it still imported | from |", "|---|---|---|---|"]
        for stage, found in digits["warm_stages"].items():
            lines.append(f"| {stage} | {found['seconds']:.2f} | {found['modules']} | {', '.join(found['packages'])} |")
        lines.append("")
    return lines

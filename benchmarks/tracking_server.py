"""MLflow's time in the pipeline: the team server (PostgreSQL, basic auth, S3 artifacts) against the
embedded SQLite store, side by side on this machine.

    python benchmarks/tracking_server.py              # about 3 minutes on 2 cores
    python benchmarks/tracking_server.py --repeats 1

It starts a private team stack (``digitflow stack up`` in a temporary state folder, its own
PostgreSQL databases, removed at the end), prepares the digits data once in a copy of the project, then
runs the three stages that talk to MLflow (``train_sklearn``, ``train_torch``, ``evaluate``) through
``benchmarks/stage_probe.py`` with each store in turn, ``--repeats`` times, and prints a Markdown table of
the median wall time and MLflow seconds per stage (see ``stage_probe.py`` for what counts as MLflow's).
Needs the team extra and Debian's PostgreSQL, like ``tests/test_team.py``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitflow.team.config import load_config  # noqa: E402
from tests.support import project as testing  # noqa: E402
from tests.support.project import command_env  # noqa: E402

PROBE = ROOT / "benchmarks" / "stage_probe.py"
STAGES = ("train_sklearn", "train_torch", "evaluate")


def run(cwd: Path, command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - started


def probe(project: Path, stage: str, env: dict[str, str]) -> dict[str, float]:
    out = project / f".probe-{stage}.json"
    seconds = run(project, [sys.executable, str(PROBE), f"stages.{stage}", str(out)], env)
    result = json.loads(out.read_text())
    out.unlink()
    calls = sum(result["mlflow_calls"].values())
    return {"seconds": seconds, "mlflow_seconds": result["mlflow_seconds"], "calls": calls}


def measure(project: Path, env: dict[str, str], repeats: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {stage: [] for stage in STAGES}
    for _ in range(repeats):
        for stage in STAGES:
            samples[stage].append(probe(project, stage, env))
    return {
        stage: {key: statistics.median(s[key] for s in rows) for key in ("seconds", "mlflow_seconds", "calls")}
        for stage, rows in samples.items()
    }


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| store | stage | stage wall s | MLflow s | MLflow calls |",
        "|---|---|---:|---:|---:|",
    ]
    for store, stages in results.items():
        for stage, row in stages.items():
            lines.append(
                f"| {store} | {stage} | {row['seconds']:.2f} | {row['mlflow_seconds']:.2f} | {row['calls']:.0f} |"
            )
        total = sum(row["mlflow_seconds"] for row in stages.values())
        lines.append(f"| {store} | **pipeline MLflow total** | | **{total:.2f}** | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each stage per store (median reported)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="digitflow-tracking-bench-") as workdir:
        state = Path(workdir) / "stack"
        stack = ["digitflow", "stack", "--state-dir", str(state)]
        name = f"dfbench_{secrets.token_hex(3)}"
        print(f"[benchmark] starting a private team stack ({name})", file=sys.stderr)
        run(ROOT, [*stack, "up", "--name", name], command_env())
        try:
            config = load_config(state)
            project = testing.make_project_copy(ROOT, Path(workdir) / "project")
            run(project, ["dvc", "repro", "split"], command_env())
            server_env = command_env(
                MLFLOW_TRACKING_URI=config.mlflow_url,
                MLFLOW_TRACKING_USERNAME=config.admin_username,
                MLFLOW_TRACKING_PASSWORD=config.admin_password,
            )
            results = {}
            for store, env in (("embedded (SQLite)", command_env()), ("server (PostgreSQL, auth, S3)", server_env)):
                print(f"[benchmark] {store}: {args.repeats} x {', '.join(STAGES)}", file=sys.stderr)
                results[store] = measure(project, env, args.repeats)
        finally:
            run(ROOT, [*stack, "down", "--purge"], command_env())
    print(table(results))
    return results


if __name__ == "__main__":
    main()

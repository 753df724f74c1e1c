"""The pipeline half of the benchmark: whole `dvc repro` runs, each stage alone, and what frames them.

Everything here runs commands in temporary copies of the project and reports wall time and CPU time
(user + system of the command and every process it waited for, from ``os.wait4``):

- the import floor: ``python -c "import torch, mlflow, sklearn, matplotlib"``, what any process that
  trains, tracks and plots pays before doing anything;
- ``dvc repro`` from a clean copy (digits, MNIST), the no-op, and one after a ``train_torch`` change;
- a params error: a copy with a bad value, ``dvc repro`` until the one-line message;
- each stage alone through ``benchmarks/stage_probe.py`` (wall, CPU, peak RSS, MLflow's share);
- ``dvc queue`` with 1 worker against 2 workers on the same number of experiments.

All of it cold (``DIGITFLOW_SERVER=0``): the figures before the warm stage server, comparable with
earlier runs; ``benchmarks/warm_bench.py`` measures warm against cold.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from digitflow.core import dvc_files  # noqa: E402
from tests.support import project as testing  # noqa: E402
from tests.support.project import set_params  # noqa: E402

PROBE = ROOT / "benchmarks" / "stage_probe.py"
STAGES = tuple(dvc_files.stages(ROOT / "dvc.yaml"))  # in dvc.yaml's order
IMPORT_FLOOR = "import torch, mlflow, sklearn, matplotlib"
# A value params.yaml's rules refuse, found by the validate stage before any other work.
BAD_PARAMS = {"train_torch": {"lr": -1}}
QUEUE_EXPERIMENTS = 4


def log(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def make_project_copy(destination: Path, **sections: dict[str, Any]) -> Path:
    """A fresh clone-like copy of the project, committed, with ``sections`` merged into params.yaml."""
    return testing.make_project_copy(ROOT, destination, **sections)


def timed_command(cwd: Path, command: list[str], env: dict[str, str], check: bool = True) -> dict[str, Any]:
    """Run ``command``: wall seconds, CPU seconds (its own and its waited-for children's), output, and
    ``ru_maxrss`` (which on Linux also counts this process's RSS at fork, so the probe's ``VmHWM`` is
    preferred where there is one)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if check and process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode} in {cwd}:\n{text[-4000:]}")
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "output": text,
        "returncode": process.returncode,
    }


def dvc_repro(project: Path, env: dict[str, str]) -> dict[str, Any]:
    result = timed_command(project, ["dvc", "repro"], env)
    ran = [line.split("'")[1] for line in result["output"].splitlines() if line.startswith("Running stage '")]
    return {"seconds": round(result["seconds"], 2), "cpu_seconds": round(result["cpu_seconds"], 2), "stages_run": ran}


def median_times(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median wall and CPU seconds of repeated runs, rounded like every figure of the benchmark."""
    return {key: round(statistics.median(run[key] for run in runs), 2) for key in ("seconds", "cpu_seconds")}


def noop_again(project: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    """The median of ``repeats`` more no-op ``dvc repro`` runs: the steady state a user sees when typing it
    again, measured like the import floor (the first no-op after a repro is reported on its own)."""
    runs = [dvc_repro(project, env) for _ in range(repeats)]
    median = median_times(runs)
    log(f"no-op dvc repro again (median of {repeats}): {median['seconds']} s")
    return {**median, "stages_run": sorted({stage for run in runs for stage in run["stages_run"]})}


def import_floor(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """The median of ``repeats`` fresh interpreters importing the four libraries (after one warm-up run,
    so the figure is the warm page cache's, like a stage's)."""
    command = [sys.executable, "-c", IMPORT_FLOOR]
    timed_command(ROOT, command, env)
    median = median_times([timed_command(ROOT, command, env) for _ in range(repeats)])
    log(f"import floor ({IMPORT_FLOOR}): {median['seconds']:.2f} s")
    return {"command": f'python -c "{IMPORT_FLOOR}"', **median}


def params_error(project: Path, env: dict[str, str]) -> dict[str, Any]:
    """``dvc repro`` with a bad value in params.yaml: seconds until it fails, and the message it gave."""
    params_file = project / "params.yaml"
    original = params_file.read_text()
    set_params(project, **BAD_PARAMS)
    try:
        result = timed_command(project, ["dvc", "repro"], env, check=False)
    finally:
        params_file.write_text(original)
    lines = result["output"].splitlines()
    first = next((n for n, line in enumerate(lines) if "error:" in line), None)
    if result["returncode"] == 0 or first is None:
        raise RuntimeError(f"a bad params.yaml did not fail with a message:\n{result['output'][-2000:]}")
    message = "\n".join(lines[first : first + 4])  # the stage's message: its first line and the problem
    log(f"params error after {result['seconds']:.2f} s:\n{message}")
    seconds, cpu = round(result["seconds"], 2), round(result["cpu_seconds"], 2)
    return {"seconds": seconds, "cpu_seconds": cpu, "message": message}


def probe_stages(project: Path, env: dict[str, str], stages: tuple[str, ...]) -> dict[str, Any]:
    """Run each stage alone, in order, through the probe: wall and CPU time, peak RSS, MLflow seconds."""
    rows = {}
    for stage in stages:
        out = project / f".probe-{stage}.json"
        result = timed_command(project, [sys.executable, str(PROBE), f"stages.{stage}", str(out)], env)
        probe = json.loads(out.read_text())
        out.unlink()
        rows[stage] = {
            "seconds": round(result["seconds"], 2),
            "cpu_seconds": round(result["cpu_seconds"], 2),
            "peak_rss_mb": round(probe["peak_rss_mb"] or result["peak_rss_mb"], 1),
            "mlflow_seconds": round(probe["mlflow_seconds"], 2),
            "mlflow_import_seconds": round(probe["mlflow_import_seconds"], 2),
            "mlflow_share": round(probe["mlflow_seconds"] / result["seconds"], 3),
            "mlflow_calls": probe["mlflow_calls"],
            "mlflow_seconds_by_call": probe["mlflow_seconds_by_call"],
        }
        log(f"stage {stage}: {rows[stage]['seconds']:.1f} s wall, {rows[stage]['cpu_seconds']:.1f} s CPU")
    return rows


def queue_run(project: Path, env: dict[str, str], workers: int, first_seed: int) -> dict[str, Any]:
    """Queue ``QUEUE_EXPERIMENTS`` experiments (new ``train_torch.seed`` values, so none is restored from
    the run-cache) and time ``dvc queue start -j workers`` until the queue is empty."""
    seeds = ",".join(str(first_seed + n) for n in range(QUEUE_EXPERIMENTS))
    timed_command(project, ["dvc", "exp", "run", "--queue", "-S", f"train_torch.seed={seeds}"], env)
    started = time.perf_counter()
    timed_command(project, ["dvc", "queue", "start", "-j", str(workers)], env)
    status = ""
    while time.perf_counter() - started < 1800:
        status = timed_command(project, ["dvc", "queue", "status"], env)["output"]
        if not any(word in status for word in ("Queued", "Running")):
            break
        time.sleep(1)
    seconds = time.perf_counter() - started
    if "Failed" in status or "Queued" in status or "Running" in status:
        raise RuntimeError(f"the queue with {workers} worker(s) did not finish cleanly:\n{status}")
    log(f"dvc queue, {QUEUE_EXPERIMENTS} experiments, {workers} worker(s): {seconds:.1f} s")
    return {"workers": workers, "experiments": QUEUE_EXPERIMENTS, "seconds": round(seconds, 1)}


def bench_pipeline(workdir: Path, mirror: str, quick: bool) -> dict[str, Any]:
    # Cold: every stage imports its libraries itself (benchmarks/warm_bench.py compares the warm server).
    env = testing.command_env(DIGITFLOW_MNIST_MIRRORS=mirror, DIGITFLOW_SERVER="0")
    results: dict[str, Any] = {"import_floor": import_floor(env, repeats=1 if quick else 3)}
    if quick:
        digits = make_project_copy(workdir / "digits")
        results["params_error"] = params_error(digits, env)
        results["digits_stages"] = probe_stages(digits, env, STAGES[: STAGES.index("train_torch") + 1])
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
    log(f"no-op dvc repro: {results['repro_digits_noop']['seconds']} s")
    results["repro_digits_noop_again"] = noop_again(digits, env, repeats=3)
    results["params_error"] = params_error(digits, env)

    results["mnist_stages"] = probe_stages(mnist, env, STAGES)
    results["digits_stages"] = probe_stages(digits, env, STAGES)
    results["queue"] = [queue_run(digits, env, workers, 100 * workers) for workers in (1, 2)]
    return results

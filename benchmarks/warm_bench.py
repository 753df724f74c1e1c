"""The warm stage server against cold stages, side by side, with the import floor F of the same minute.

Every scenario runs cold (``DIGITFLOW_SERVER=0``: each stage imports its libraries) and warm (the
benchmark's own server, started first as ``digitflow server start`` does) in two copies of the project,
one right after the other, with F (``python -c "import torch, mlflow, sklearn, matplotlib"``, median of
3) measured just before each pair; each figure is wall seconds and its multiple of that F:

- ``dvc repro`` of a clean digits copy; warm also as a user's very first run, which starts the server
  itself (its stages run cold until the server is ready);
- one changed setting after a repro: ``dvc exp run -S train_sklearn.C=0.5``, then params.yaml edited and
  ``dvc repro``;
- one sweep trial of 5 epochs (``digitflow sweep --trials 1``; the trial's own time, from the study);
- the README's six-trial sweep: two workers, 5 epochs per trial;
- ``dvc repro`` of a clean MNIST copy (files from the local HTTP mirror).

Also: how long the server takes to start, its memory (resident, and proportional: a page shared by n
processes counts 1/n to each) and the peak of server plus stage children during the warm digits repro,
and what each warm stage still imported that the server had not (``DIGITFLOW_SERVER_TRACE``).
In quick mode: F, the server's start and memory, and two stages alone, cold and warm.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.pipeline_bench import IMPORT_FLOOR, dvc_repro, log, make_project_copy, timed_command
from tests.support import project as testing
from tests.support.project import set_params

ROOT = Path(__file__).resolve().parents[1]
SWEEP_WORKER = "digitflow sweep --trials 6 -S train_torch.digits.epochs=5"
QUICK_STAGES = ("train_sklearn", "train_torch")


def floor(env: dict[str, str]) -> float:
    """F now: the median of three fresh interpreters importing the four libraries."""
    command = [sys.executable, "-c", IMPORT_FLOOR]
    return round(statistics.median(timed_command(ROOT, command, env)["seconds"] for _ in range(3)), 2)


def pair(name: str, cold: float, warm: float, f: float, trace: Path | None = None) -> dict[str, Any]:
    """Cold against warm; with the warm run's trace, the seconds its stages took in the server's
    children (the rest is DVC's own work, the commands' start and the hand-over)."""
    in_stages = round(sum(stage["seconds"] for stage in traced_imports(trace).values()), 2) if trace else None
    log(
        f"{name}: cold {cold:.1f} s ({cold / f:.1f} F), warm {warm:.1f} s ({warm / f:.1f} F), F {f:.2f} s"
        + (f"; warm stages' own {in_stages:.1f} s" if trace else "")
    )
    return {
        "floor": f,
        "cold": round(cold, 2),
        "warm": round(warm, 2),
        "cold_floors": round(cold / f, 2),
        "warm_floors": round(warm / f, 2),
        "speedup": round(cold / warm, 2),
        "warm_in_stages": in_stages,
    }


def tracing(env: dict[str, str], trace: Path) -> dict[str, str]:
    """``env`` whose warm stages append what they did to ``trace`` (``DIGITFLOW_SERVER_TRACE``)."""
    trace.unlink(missing_ok=True)
    return {**env, "DIGITFLOW_SERVER_TRACE": str(trace)}


def seconds_of(project: Path, command: list[str], env: dict[str, str]) -> float:
    return timed_command(project, command, env)["seconds"]


# --------------------------------------------------------------------------------------------------
# The server's processes and memory


def server_tree(folder: Path) -> list[int]:
    """The servers of ``folder`` (their info files) and every process below them."""
    roots = set()
    for info in folder.glob("*.json"):
        roots.add(json.loads(info.read_text())["pid"])
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, added = set(roots), True
    while added:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        added = bool(below)
    return sorted(pid for pid in tree if pid in parents)


def memory_kb(pid: int) -> dict[str, int]:
    """Resident and proportional set sizes of ``pid``, in kB (zeros if it is gone)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    except (OSError, ValueError):
        return {"rss": 0, "pss": 0}
    return {"rss": int(fields["Rss"].split()[0]), "pss": int(fields["Pss"].split()[0])}


@contextmanager
def peak_memory(folder: Path) -> Iterator[dict[str, float]]:
    """Sample the servers' process trees four times a second; the peak of their summed PSS (MB), with
    the number of processes at that moment."""
    peak = {"pss_mb": 0.0, "processes": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            tree = server_tree(folder)
            total = sum(memory_kb(pid)["pss"] for pid in tree) / 1024
            if total > peak["pss_mb"]:
                peak.update(pss_mb=round(total, 1), processes=len(tree))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def server_memory(folder: Path) -> dict[str, float]:
    (pid,) = [json.loads(info.read_text())["pid"] for info in folder.glob("*.json")][:1]
    sizes = memory_kb(pid)
    return {"rss_mb": round(sizes["rss"] / 1024, 1), "pss_mb": round(sizes["pss"] / 1024, 1)}


def start_server(env: dict[str, str]) -> float:
    result = timed_command(ROOT, ["digitflow", "server", "start"], env)
    log(result["output"].strip())
    return round(result["seconds"], 2)


def stop_servers(env: dict[str, str]) -> None:
    timed_command(ROOT, ["digitflow", "server", "stop"], env)


def traced_imports(trace: Path) -> dict[str, dict[str, Any]]:
    """Per warm stage: its seconds and the third-party modules it imported (top-level names, count)."""
    found = {}
    for line in trace.read_text().splitlines() if trace.exists() else []:
        entry = json.loads(line)
        name = entry["module"].removeprefix("stages.")
        found[name] = {
            "seconds": entry["seconds"],
            "modules": len(entry["imported"]),
            "packages": sorted({module.split(".")[0] for module in entry["imported"]}),
        }
    return found


# --------------------------------------------------------------------------------------------------
# Scenarios


def clean_digits(workdir: Path, cold_env: dict[str, str], warm_env: dict[str, str], folder: Path) -> dict[str, Any]:
    """Clean digits `dvc repro`: cold, warm (server ready), and warm as a first run (server stopped)."""
    f = floor(cold_env)
    cold = make_project_copy(workdir / "digits-cold")
    warm = make_project_copy(workdir / "digits-warm")
    cold_run = dvc_repro(cold, cold_env)
    trace = workdir / "trace.jsonl"
    with peak_memory(folder) as peak:
        warm_run = dvc_repro(warm, tracing(warm_env, trace))
    result = pair("dvc repro, clean digits", cold_run["seconds"], warm_run["seconds"], f, trace)
    result["stages_run"] = warm_run["stages_run"]
    result["peak_memory"] = peak
    result["warm_stages"] = traced_imports(trace)
    stop_servers(warm_env)
    first = make_project_copy(workdir / "digits-first")
    result["warm_first_run"] = dvc_repro(first, warm_env)["seconds"]
    result["warm_first_run_floors"] = round(result["warm_first_run"] / f, 2)
    log(f"dvc repro, clean digits, first run (starts the server): {result['warm_first_run']} s")
    start_server(warm_env)
    shutil.rmtree(first)
    return result


def changed_setting(cold: Path, warm: Path, cold_env: dict[str, str], warm_env: dict[str, str]) -> dict[str, Any]:
    """After a repro: `dvc exp run -S train_sklearn.C=0.5`; then C edited in params.yaml and `dvc repro`."""
    f, trace = floor(cold_env), warm.parent / "trace-exp-run.jsonl"
    command = ["dvc", "exp", "run", "-S", "train_sklearn.C=0.5"]
    cold_seconds = seconds_of(cold, command, cold_env)
    warm_seconds = seconds_of(warm, command, tracing(warm_env, trace))
    exp_run = pair("dvc exp run -S train_sklearn.C=0.5", cold_seconds, warm_seconds, f, trace)
    f, trace = floor(cold_env), warm.parent / "trace-edit.jsonl"
    for project in (cold, warm):
        set_params(project, train_sklearn={"C": 0.7})
    cold_seconds = dvc_repro(cold, cold_env)["seconds"]
    warm_seconds = dvc_repro(warm, tracing(warm_env, trace))["seconds"]
    edited = pair("params.yaml edited, dvc repro", cold_seconds, warm_seconds, f, trace)
    return {"exp_run": exp_run, "params_edit_repro": edited}


def trial_seconds(project: Path, study: str) -> list[float]:
    import optuna

    storage = f"sqlite:///{project / 'optuna.db'}"
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    return [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]


def sweep_trial(cold: Path, warm: Path, cold_env: dict[str, str], warm_env: dict[str, str]) -> dict[str, Any]:
    """One trial of 5 epochs (`digitflow sweep --trials 1`): the trial itself, as the study records it."""
    f, trace = floor(cold_env), warm.parent / "trace-trial.jsonl"
    command = ["digitflow", "sweep", "--study", "bench-trial", "--trials", "1", "-S", "train_torch.digits.epochs=5"]
    seconds = {}
    for name, project, env in (("cold", cold, cold_env), ("warm", warm, tracing(warm_env, trace))):
        timed_command(project, command, env)
        (seconds[name],) = trial_seconds(project, "bench-trial")
    return pair("one sweep trial, 5 epochs", seconds["cold"], seconds["warm"], f, trace)


def six_trial_sweep(cold: Path, warm: Path, cold_env: dict[str, str], warm_env: dict[str, str]) -> dict[str, Any]:
    """The README's sweep on one machine: two workers, six trials of 5 epochs."""
    f = floor(cold_env)
    script = f"{SWEEP_WORKER} &\n{SWEEP_WORKER}\nwait"
    result = pair("six-trial sweep, two workers",
                  seconds_of(cold, ["bash", "-c", script], cold_env),
                  seconds_of(warm, ["bash", "-c", script], warm_env), f)  # fmt: skip
    result["trials"] = {"cold": len(trial_seconds(cold, "digits-tune"))}
    result["trials"]["warm"] = len(trial_seconds(warm, "digits-tune"))
    return result


def clean_mnist(workdir: Path, cold_env: dict[str, str], warm_env: dict[str, str]) -> dict[str, Any]:
    f, trace = floor(cold_env), workdir / "trace-mnist.jsonl"
    cold = make_project_copy(workdir / "mnist-cold", data={"dataset": "mnist"})
    warm = make_project_copy(workdir / "mnist-warm", data={"dataset": "mnist"})
    cold_seconds = dvc_repro(cold, cold_env)["seconds"]
    warm_seconds = dvc_repro(warm, tracing(warm_env, trace))["seconds"]
    result = pair("dvc repro, clean MNIST", cold_seconds, warm_seconds, f, trace)
    shutil.rmtree(cold)
    shutil.rmtree(warm)
    return result


def quick_stages(workdir: Path, cold_env: dict[str, str], warm_env: dict[str, str]) -> dict[str, Any]:
    """Quick mode: the two training stages alone on a digits copy, cold then warm."""
    project = make_project_copy(workdir / "digits-quick")
    timed_command(project, ["dvc", "repro", "check"], cold_env)
    f = floor(cold_env)
    found = {}
    for stage in QUICK_STAGES:
        command = [sys.executable, "-m", f"stages.{stage}"]
        cold, warm = seconds_of(project, command, cold_env), seconds_of(project, command, warm_env)
        found[stage] = pair(f"{stage} alone", cold, warm, f)
    return found


def bench_warm(workdir: Path, mirror: str, quick: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="digitflow-bench-servers-", dir="/tmp"))
    cold_env = testing.command_env(DIGITFLOW_SERVER="0", DIGITFLOW_MNIST_MIRRORS=mirror)
    warm_env = testing.command_env(DIGITFLOW_SERVER_DIR=str(folder), DIGITFLOW_MNIST_MIRRORS=mirror)
    warm_env.pop("DIGITFLOW_SERVER", None)
    results: dict[str, Any] = {}
    try:
        results["server_start_seconds"] = start_server(warm_env)
        results["server_memory"] = server_memory(folder)
        log(f"warm server: {results['server_memory']}")
        if quick:
            results["stages"] = quick_stages(workdir, cold_env, warm_env)
            return results
        results["repro_digits_clean"] = clean_digits(workdir, cold_env, warm_env, folder)
        cold, warm = workdir / "digits-cold", workdir / "digits-warm"
        results["changed_setting"] = changed_setting(cold, warm, cold_env, warm_env)
        results["sweep_trial"] = sweep_trial(cold, warm, cold_env, warm_env)
        sweep_cold = shutil.copytree(cold, workdir / "sweep-cold", symlinks=True)
        sweep_warm = shutil.copytree(warm, workdir / "sweep-warm", symlinks=True)
        results["six_trial_sweep"] = six_trial_sweep(sweep_cold, sweep_warm, cold_env, warm_env)
        results["repro_mnist_clean"] = clean_mnist(workdir, cold_env, warm_env)
        return results
    finally:
        stop_servers(warm_env)
        shutil.rmtree(folder, ignore_errors=True)

"""Sweeps shared through a database: real worker processes, real `dvc exp run --temp` trials, a real MLflow
store, Optuna studies in SQLite and in PostgreSQL on 127.0.0.1, and a worker killed with SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pytest
import yaml

from digitflow.sweep.space import load_config
from tests.conftest import git, make_project_copy, pipeline_env, run
from tests.support import browser, services
from tests.support.ps_watch import command_lines_seen, group_runs
from tests.support.readme import readme_command, readme_commands
from tests.support.sweeps import SPACE, experiments

if TYPE_CHECKING:
    import optuna

# Optuna and psycopg2 come with the sweep extra: without it these tests are skipped with the reason
# (tests/support/extras.py), and Optuna is imported only where a test uses it, so the module still collects.
pytestmark = pytest.mark.sweep

QUICK_HEARTBEAT = ["--heartbeat", "2", "--grace", "8"]


def sweep_project(root: Path) -> Path:
    """A committed project copy whose fetch / preprocess / split are in DVC's run-cache, and a space file."""
    project = make_project_copy(root / "project")
    run(project, "dvc", "repro", "split")
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return project


def start_worker(project: Path, log: Path, *args: str, config: str | None = "space.yaml") -> subprocess.Popen[bytes]:
    """One `digitflow sweep` process, leading its own process group (its dvc and stage children);
    with the test's small space file, or (``config=None``) the project's sweep.yaml."""
    options = ["--config", str(project.parent / config)] if config else []
    with log.open("wb") as out:
        return subprocess.Popen(
            ["digitflow", "sweep", *options, *args],
            cwd=project,
            env=pipeline_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def finish(workers: list[subprocess.Popen[bytes]], logs: list[Path], timeout: float = 1200) -> list[int]:
    deadline = time.time() + timeout
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            codes.append(worker.wait())
    return codes


def tail(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)


def committed_json(project: Path, rev: str, path: str) -> dict:
    return json.loads(
        subprocess.run(["git", "show", f"{rev}:{path}"], cwd=project, capture_output=True, text=True, check=True).stdout
    )


def study_runs(project: Path, study: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digitflow")
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`digitflow.sweep.study` = '{study}'", max_results=1000
    )


# --- checked before any work ------------------------------------------------------------------------


def test_a_test_metric_is_refused_before_any_work(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    log = tmp_path / "refused.log"
    worker = start_worker(project, log, "--metric", "torch.test_accuracy", "--trials", "2")
    assert worker.wait(timeout=120) == 1
    output = log.read_text()
    assert "torch.test_accuracy is reported, not used" in output
    assert "Use torch.val_accuracy" in output
    assert "Traceback" not in output
    assert not (project / "optuna.db").exists()
    assert experiments(project) == {}


@pytest.mark.e2e
def test_ctrl_c_stops_the_worker_and_its_trial_cleanly(tmp_path: Path) -> None:
    """Ctrl-C in the worker's terminal (SIGINT to its whole process group) while a trial trains: the
    trial's dvc ends its stage and removes its temporary copy, the trial ends FAILED, and the worker
    stops instead of going on with the next trial (DVC ignores Ctrl-C while a stage runs)."""
    import optuna

    project = sweep_project(tmp_path)
    log = tmp_path / "worker.log"
    worker = start_worker(project, log, "--study", "interrupted", "--trials", "3")
    deadline = time.time() + 300
    while time.time() < deadline and not group_runs(worker.pid, "-m stages.train_"):
        time.sleep(0.05)
    os.killpg(worker.pid, signal.SIGINT)
    assert worker.wait(timeout=120) == 130, tail([log])
    output = log.read_text()
    assert "interrupted" in output
    study = optuna.load_study(study_name="interrupted", storage=f"sqlite:///{project / 'optuna.db'}")
    assert [trial.state.name for trial in study.get_trials()] == ["FAIL"], tail([log])
    assert not list((project / ".dvc/tmp/exps/standalone").glob("tmp*")), "the trial's temporary copy is left"
    time.sleep(1)
    assert not group_runs(worker.pid, ""), "a process of the worker's group outlived it"


# --- one machine: SQLite storage, two workers: the README's commands as written ------------------------

README_STUDY = "digits-tune"  # sweep.yaml's study, which the README's commands use


def load_study(storage: str) -> optuna.Study:
    import optuna

    return optuna.load_study(study_name=README_STUDY, storage=storage)


def trials_in(study: optuna.Study, state: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials in ``state`` (``COMPLETE``, ``RUNNING``, ``FAIL`` ...)."""
    return [trial for trial in study.get_trials() if trial.state.name == state]


README_COLUMNS = [
    "Experiment",
    "metrics/train_torch.json:val_log_loss",
    "sklearn.test_accuracy",
    "torch.test_accuracy",
    "train_sklearn.C",
    "train_torch.lr",
    "train_torch.optimizer",
    "train_torch.digits.batch_size",
    "train_torch.digits.weight_decay",
]


def readme_local_sweep() -> str:
    """The README's "On one machine" workers, as written: one in the background, one in front, `wait`."""
    workers = [command for command in readme_commands() if command.startswith("digitflow sweep --trials")]
    assert len(workers) == 2, workers
    assert workers[0].endswith(" &"), "the first worker runs in the background"
    return "\n".join([*workers, readme_command("wait")])


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("local-sweep")
    project = sweep_project(root)
    output = run(project, "bash", "-c", readme_local_sweep())
    return project, output.stdout + output.stderr


@pytest.mark.e2e
def test_two_workers_share_six_trials(local_sweep: tuple[Path, str]) -> None:
    project, output = local_sweep
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    trials = study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6, output[-3000:]
    # A trial beyond the total (two workers asking at the same instant) is pruned before it runs anything.
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all("dvc_experiment" not in t.user_attrs for t in trials if t.state.name == "PRUNED")
    # Both workers finished with the study's summary, and they ran trials side by side.
    assert output.count(f"study {README_STUDY}: ") == 2, output[-3000:]
    spans = sorted((t.datetime_start, t.datetime_complete) for t in complete)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), "no two trials overlapped"
    assert all(t.params.get("train_torch.digits.epochs") is None for t in complete)

    exps = experiments(project)
    assert set(exps) == {f"{README_STUDY}-{t.number}" for t in complete}
    for trial in complete:  # the README's -S reached every trial
        params = yaml.safe_load(git(project, "show", f"{exps[f'{README_STUDY}-{trial.number}']}:params.yaml"))
        assert params["train_torch"]["digits"]["epochs"] == 5

    runs = study_runs(project, README_STUDY)
    assert len(runs) == 12
    assert all(r.info.status == "FINISHED" for r in runs)
    by_trial = sorted((r.data.tags["digitflow.sweep.trial"], r.data.tags["digitflow.stage"]) for r in runs)
    assert by_trial == sorted((str(t.number), stage) for t in complete for stage in ("train_sklearn", "train_torch"))
    assert all(r.data.tags["dvc.exp_name"] == f"{README_STUDY}-{r.data.tags['digitflow.sweep.trial']}" for r in runs)


@pytest.mark.e2e
def test_readme_exp_show_lists_every_trial_with_its_columns(local_sweep: tuple[Path, str]) -> None:
    """The README's `dvc exp show --keep ...`, as written (in a terminal wide enough for its table):
    the objective, both test accuracies and the searched params, for every trial."""
    project, _ = local_sweep
    table = run(project, "bash", "-c", readme_command("dvc exp show --keep 'Experiment|metrics/"), COLUMNS="400").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert sorted(header) == sorted(README_COLUMNS), table
    rows = [line.split()[1:] for line in table.splitlines() if re.match(r"\s*[├└]── ", line)]
    shown = {row[1].strip("[]"): dict(zip(header[1:], row[2:], strict=True)) for row in rows}  # hash [name] ...
    exps = experiments(project)
    assert set(shown) == set(exps), table
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    for trial in trials_in(study, "COMPLETE"):
        columns = shown[f"{README_STUDY}-{trial.number}"]
        assert float(columns["metrics/train_torch.json:val_log_loss"]) == pytest.approx(trial.value, rel=1e-4)
        assert float(columns["train_torch.lr"]) == pytest.approx(trial.params["train_torch.lr"], rel=1e-3)
        assert columns["train_torch.optimizer"] == trial.params["train_torch.optimizer"]
        assert int(columns["train_torch.digits.batch_size"]) == trial.params["train_torch.digits.batch_size"]


@pytest.mark.e2e
def test_readme_exp_push_shares_a_trial(local_sweep: tuple[Path, str], tmp_path: Path) -> None:
    """The README's `dvc exp push origin NAME`, as written, to a bare git repository added as `origin`
    and a local folder added as the default DVC remote (the committed config names none): the
    experiment's ref and its outputs arrive."""
    project, _ = local_sweep
    command = readme_command("dvc exp push origin")
    name = command.split()[-1]
    assert name in experiments(project), f"the README pushes {name}, which the sweep did not produce"
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(project, "remote", "add", "origin", str(origin))
    run(project, "dvc", "remote", "add", "--local", "-d", "shared", str(tmp_path / "dvc-remote"))
    try:
        run(project, "bash", "-c", command)
        refs = git(origin, "for-each-ref", "--format=%(refname)", "refs/exps/").split()
        assert [ref for ref in refs if ref.endswith(f"/{name}")], refs
        assert any(path.is_file() for path in (tmp_path / "dvc-remote").rglob("*")), "no output was pushed"
    finally:
        git(project, "remote", "remove", "origin")
        run(project, "dvc", "remote", "remove", "--local", "shared")


@pytest.mark.e2e
def test_the_objective_is_the_validation_metric_and_the_test_metric_is_only_reported(
    local_sweep: tuple[Path, str],
) -> None:
    project, output = local_sweep
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    exps = experiments(project)
    for trial in trials_in(study, "COMPLETE"):
        rev = exps[f"{README_STUDY}-{trial.number}"]
        val = committed_json(project, rev, "metrics/train_torch.json")
        test = committed_json(project, rev, "metrics/evaluate.json")["torch"]
        assert trial.value == pytest.approx(val["val_log_loss"])
        assert trial.value != pytest.approx(test["test_log_loss"])
        assert trial.user_attrs["test_log_loss"] == pytest.approx(test["test_log_loss"])
        assert trial.params["train_torch.lr"] == pytest.approx(
            yaml.safe_load(
                subprocess.run(
                    ["git", "show", f"{rev}:params.yaml"], cwd=project, capture_output=True, text=True, check=True
                ).stdout
            )["train_torch"]["lr"]
        )
    best = study.best_trial
    assert best.value == min(t.value for t in trials_in(study, "COMPLETE"))
    summary = output[output.index(f"study {README_STUDY}:") :]
    assert f"best trial: {best.number} (DVC experiment {README_STUDY}-{best.number}" in summary
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    best_run = client.get_run(best.user_attrs["mlflow_run_id"])  # the torch run of that very experiment
    assert best_run.data.tags["dvc.exp_name"] == f"{README_STUDY}-{best.number}", summary
    assert f"MLflow run {best_run.info.run_id})" in summary
    assert "torch.test_log_loss" in summary
    assert "reported, not used" in summary
    assert f"dvc exp apply {README_STUDY}-{best.number}" in summary
    assert f"compare the trials' MLflow runs: digitflow ui --study {README_STUDY}" in summary


@pytest.mark.e2e
def test_digitflow_ui_shows_the_study_trials_best_first(local_sweep: tuple[Path, str], tmp_path: Path) -> None:
    """The README's `digitflow ui --study digits-tune`, as written: the view the sweep saved, with the study's
    runs of the model it optimised (torch), best objective first, and that model's searched params as columns,
    in the terminal and in a browser ("Model training" selected), their parallel coordinates among the charts."""
    project, _ = local_sweep
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    runs = [r for r in study_runs(project, README_STUDY) if r.data.tags["digitflow.model"] == "torch"]
    names = {r.info.run_name for r in runs}
    space = load_config(project / "sweep.yaml").space
    searched = [key.rsplit(".", 1)[-1] for key in space if key.startswith("train_torch.")]
    with browser.digitflow_ui(project, readme_command("digitflow ui --study")) as ui:
        lines = [line.split() for line in ui.output.splitlines() if line.split()]
        header = next(line for line in lines if line[0] == "run")
        assert header[3:] == ["val_log_loss", "test_log_loss", "test_accuracy", "val_accuracy", *searched]
        rows = [line for line in lines if line[0].startswith(("torch-", "sklearn-"))]
        assert [row[0] for row in rows if row[0] in names] == [row[0] for row in rows]  # torch's runs only
        assert len(rows) == len(runs) == 6
        losses = [float(row[3]) for row in rows]
        assert losses == sorted(losses)
        best = f"torch-digits-{README_STUDY}-{study.best_trial.number}"  # the summary's best trial
        assert rows[0][0] == best
        assert float(rows[0][3]) == pytest.approx(study.best_value, abs=5e-5)

        table = browser.render(ui.runs_url, lambda text: all(n in text for n in names), tmp_path / "trials.png")
        assert table.selected_workflow == "Model training"
        assert "6 matching runs" in table.text  # the study's torch runs, not the experiment's others
        assert sorted(names, key=table.text.index)[0] == best

        charts = browser.render(
            ui.charts_url, lambda text: all(f"{p}\n" in text for p in searched), tmp_path / "charts.png"
        )  # the parallel coordinates' axes
        assert charts.selected_workflow == "Model training"


@pytest.mark.e2e
def test_apply_writes_the_best_params_to_params_yaml(local_sweep: tuple[Path, str]) -> None:
    project, _ = local_sweep
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    comment = "# Every setting of the pipeline"
    assert comment in (project / "params.yaml").read_text()
    log = project.parent / "apply.log"
    apply = start_worker(project, log, "--apply", "-S", "train_torch.digits.epochs=5", config=None)
    assert apply.wait(timeout=120) == 0, log.read_text()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["train_torch"]["lr"] == pytest.approx(study.best_params["train_torch.lr"])
    assert params["train_sklearn"]["C"] == pytest.approx(study.best_params["train_sklearn.C"])
    assert params["train_torch"]["digits"]["epochs"] == 5
    assert comment in (project / "params.yaml").read_text()
    after = load_study(f"sqlite:///{project / 'optuna.db'}")
    assert len(after.get_trials()) == len(study.get_trials())  # applying ran no trial


@pytest.mark.e2e
def test_joining_a_study_with_another_metric_is_refused(local_sweep: tuple[Path, str]) -> None:
    project, _ = local_sweep
    log = project.parent / "other-metric.log"
    worker = start_worker(project, log, "--trials", "7", "--metric", "sklearn.val_log_loss", config=None)
    assert worker.wait(timeout=120) == 1
    assert f"study '{README_STUDY}' optimises torch.val_log_loss, not sklearn.val_log_loss" in log.read_text()
    study = load_study(f"sqlite:///{project / 'optuna.db'}")
    assert len(trials_in(study, "COMPLETE")) == 6


# --- three workers on PostgreSQL, one of them killed mid-trial ---------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The README's database, made by its `echo ... | sudo -u postgres psql` command as written, on 127.0.0.1."""
    with services.readme_database(readme_command('echo "CREATE ROLE sweeps'), "sweeps", "secret") as url:
        yield url


def readme_shared_sweep() -> str:
    """The README's command for each of the three machines, as written (its storage in $SWEEP_STORAGE),
    with the test's options after it (later options win): 3 trials of 5 epochs, and heartbeats every 2 s
    so that the killed worker's trial is failed within seconds, not minutes."""
    assert readme_command("export SWEEP_STORAGE=").startswith("export SWEEP_STORAGE=postgresql+psycopg2://sweeps:")
    command = readme_command("digitflow sweep --study")
    assert "--storage" not in command, "the storage URL, with its password, comes from $SWEEP_STORAGE"
    return f"{command} --trials 3 -S train_torch.digits.epochs=5 {' '.join(QUICK_HEARTBEAT)}"


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> tuple[Path, optuna.Study]:
    with command_lines_seen() as seen:
        project, study = _killed_sweep(tmp_path_factory, postgres_url)
    SWEEP_COMMAND_LINES.update(seen)
    return project, study


SWEEP_COMMAND_LINES: set[str] = set()


def _killed_sweep(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> tuple[Path, optuna.Study]:
    root = tmp_path_factory.mktemp("pg-sweep")
    project = sweep_project(root)
    logs = [root / f"worker-{i}.log" for i in range(3)]
    workers = []
    for log in logs:
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    ["bash", "-c", readme_shared_sweep()],
                    cwd=project,
                    env=pipeline_env(SWEEP_STORAGE=postgres_url),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    study = None
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            study = load_study(postgres_url)
        except KeyError:
            time.sleep(1)
            continue
        if len(trials_in(study, "RUNNING")) == 3:
            break
        time.sleep(1)
    assert study is not None, tail(logs)
    # Well inside its trial: while its first training stage runs (a warm stage takes a second or two, so a
    # fixed wait would often land after the trial's runs had finished).
    while time.time() < deadline and not group_runs(workers[0].pid, "-m stages.train_sklearn"):
        time.sleep(0.05)
    os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and its dvc and stage processes, like a lost machine
    codes = finish(workers, logs)
    assert codes[0] == -signal.SIGKILL
    assert codes[1:] == [0, 0], tail(logs)
    return project, load_study(postgres_url)


@pytest.mark.e2e
def test_the_databases_password_is_on_no_command_line(killed_sweep: tuple[Path, optuna.Study]) -> None:
    """`ps` shows every user each process's command line: the workers, their `dvc exp run`s and stages,
    sampled all through the sweep, never had the storage URL's password (it is in $SWEEP_STORAGE)."""
    assert any("digitflow sweep" in line for line in SWEEP_COMMAND_LINES), "the sampling saw the workers"
    assert [line for line in SWEEP_COMMAND_LINES if "sweeps:secret@" in line] == []


def test_three_workers_on_postgres_account_for_every_trial(killed_sweep: tuple[Path, optuna.Study]) -> None:
    project, study = killed_sweep
    trials = study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    assert {t.state.name for t in trials} <= {"COMPLETE", "FAIL", "PRUNED"}  # nothing RUNNING or WAITING
    assert set(experiments(project)) >= {f"{README_STUDY}-{t.number}" for t in complete}
    runs = study_runs(project, README_STUDY)
    assert "RUNNING" not in {r.info.status for r in runs}
    finished = sorted(
        (r.data.tags["digitflow.sweep.trial"], r.data.tags["digitflow.stage"])
        for r in runs
        if r.info.status == "FINISHED"
    )
    assert finished == sorted((str(t.number), stage) for t in complete for stage in ("train_sklearn", "train_torch"))


@pytest.mark.e2e
def test_a_worker_killed_mid_trial_leaves_it_failed_and_retried(killed_sweep: tuple[Path, optuna.Study]) -> None:
    project, study = killed_sweep
    failed = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert len(failed) == 1
    retried = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1
    assert retried[0].state.name == "COMPLETE"
    assert retried[0].params == failed[0].params  # the same point of the space, run again by a live worker
    assert f"{README_STUDY}-{failed[0].number}" not in experiments(project)
    # DVC would list the killed `dvc exp run --temp` as Running for ever; the sweep removed its copy.
    shown = run(project, "dvc", "exp", "show", "--json").stdout
    assert f'"name": "{README_STUDY}-{failed[0].number}"' not in shown
    assert f'"name": "{README_STUDY}-{retried[0].number}"' in shown
    assert not list((project / ".dvc" / "tmp" / "exps" / "standalone").glob("tmp*"))

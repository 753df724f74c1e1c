"""The warm stage server end to end (digitflow/core/warm, docs/warm_server.md): real servers, real
`dvc repro` and `dvc queue`, real signals. Each test says which server it uses: the session's (the
folder tests/conftest.py gives every test run) or one of its own, in a folder of its own."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest

from digitflow.core.processes import process_alive
from tests.conftest import WARM_SERVER_DIR, copy_project, pipeline_env, run
from tests.support.project import set_params
from tests.support.readme import readme_command
from tests.support.warm import served, server_processes

pytestmark = pytest.mark.e2e
# The environment of the session's reproduced project (tests/conftest.py), whose server the tests here use.
SESSION = {"OMP_NUM_THREADS": "1"}


COLD = {"DIGITFLOW_SERVER": "0"}


def status(folder: Path, **env: str) -> str:
    command = readme_command("digitflow server status")
    return run(Path("/"), "bash", "-c", command, DIGITFLOW_SERVER_DIR=str(folder), **env).stdout


def server_pids(folder: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"^pid (\d+): up", status(folder), re.MULTILINE)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str, folder: Path | None = None) -> None:
    """Wait for ``condition``; on time-out, fail with the logs of the servers in ``folder``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {log.name}\n{log.read_text()}" for log in folder.glob("*.log")) if folder else ""
            raise AssertionError(f"{what} within {timeout} s\n{logs}")
        time.sleep(0.2)


# --- same bytes, same output, warm and cold ---------------------------------------------------------


def experiments(project: Path) -> dict[float, str]:
    """train_sklearn.C -> experiment name, for every experiment of the project."""
    shown = json.loads(run(project, "dvc", "exp", "show", "--json").stdout)
    return {
        rev["data"]["params"]["params.yaml"]["data"]["train_sklearn"]["C"]: rev["name"]
        for row in shown
        for group in row.get("experiments") or []
        for rev in group["revs"]
    }


def comparable_log(text: str, name: str) -> str:
    """`dvc queue logs` without what differs between any two runs: run ids, model versions, timings."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "RUN", text.replace(name, "EXPERIMENT"))
    text = re.sub(r"version '\d+'", "version 'N'", text)
    return re.sub(r"in \d+\.\d+ s", "in T s", text)


def tracked(project: Path, name: str) -> dict[str, dict]:
    """Each MLflow run of experiment ``name`` by stage: its params and its metrics (timings left out)."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("digitflow").experiment_id], f"tags.`dvc.exp_name` = '{name}'"
    )
    return {
        run_.data.tags["digitflow.stage"]: {
            "params": run_.data.params,
            "metrics": {k: v for k, v in run_.data.metrics.items() if "seconds" not in k},
            "status": run_.info.status,
        }
        for run_ in runs
    }


def result_files(project: Path) -> dict[str, bytes]:
    """The files an experiment brings back with `dvc exp apply`: models, metrics (the MLflow records
    aside: run ids and timings), the report and its figures."""
    found = {}
    for folder in ("models", "metrics", "reports"):
        for path in sorted((project / folder).rglob("*")):
            relative = path.relative_to(project)
            if path.is_file() and path.suffix != ".xlsx" and relative.parts[:2] != ("metrics", "runs"):
                found[relative.as_posix()] = path.read_bytes()
    for name in ("metrics/train_sklearn.json", "metrics/train_torch.json"):
        found[name] = re.sub(rb'\n\s*"mlflow_run_id": "\w+"', b"", found[name])
    return found


def queued_grid(project: Path, **env: str) -> dict[float, dict]:
    """Queue two experiments, run them with two workers, and collect what each left: its result files,
    its `dvc queue logs`, its MLflow runs."""
    run(project, "dvc", "exp", "run", "--queue", "-S", "train_sklearn.C=0.25,0.75", **SESSION, **env)
    run(project, "dvc", "queue", "start", "-j", "2", **SESSION, **env)
    deadline = time.monotonic() + 600
    while any(word in run(project, "dvc", "queue", "status").stdout for word in ("Queued", "Running")):
        assert time.monotonic() < deadline, "the queue did not finish in 10 minutes"
        time.sleep(2)
    found = {}
    for c, name in experiments(project).items():
        run(project, "dvc", "exp", "apply", name)
        found[c] = {
            "files": result_files(project),
            "log": comparable_log(run(project, "dvc", "queue", "logs", name).stdout, name),
            "runs": tracked(project, name),
        }
    return found


def test_a_queued_grid_gives_the_same_bytes_runs_and_logs_warm_and_cold(
    reproduced_digits: Path, tmp_path: Path
) -> None:
    """Two experiments queued and run by two workers, in two copies of a reproduced project: warm, then
    cold. Each experiment's models, metrics, report and figures are the same bytes; its MLflow runs have
    the same params and metrics; `dvc queue logs` shows the same stage output."""
    warm_project = copy_project(reproduced_digits, tmp_path / "warm")
    cold_project = copy_project(reproduced_digits, tmp_path / "cold")
    warm, cold = queued_grid(warm_project), queued_grid(cold_project, **COLD)
    expected = [(f"stages.{stage}", "exit 0") for stage in ("validate", "train_sklearn", "evaluate", "report")]
    assert sorted(served(WARM_SERVER_DIR, warm_project)) == sorted(expected * 2)
    assert served(WARM_SERVER_DIR, cold_project) == []
    assert sorted(warm) == sorted(cold) == [0.25, 0.75]
    for c in warm:
        assert warm[c]["files"].keys() == cold[c]["files"].keys()
        assert [name for name in warm[c]["files"] if warm[c]["files"][name] != cold[c]["files"][name]] == []
        assert warm[c]["runs"] == cold[c]["runs"]
        assert warm[c]["runs"]["train_sklearn"]["params"]["C"] == str(c)
        assert warm[c]["log"] == cold[c]["log"]
        assert "[train_sklearn] val accuracy" in warm[c]["log"]
    assert warm[0.25]["files"]["models/sklearn/model.npz"] != warm[0.75]["files"]["models/sklearn/model.npz"]


# --- signals ------------------------------------------------------------------------------------------


def running_torch_run(project: Path, known: set[str], process: subprocess.Popen) -> mlflow.entities.Run:
    """The train_torch run the stage started, once it is RUNNING."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, f"the stage ended ({process.returncode}) before its run started"
        assert time.monotonic() < deadline, "the stage's run did not start in 3 minutes"
        if (project / "mlflow.db").exists():
            experiment = client.get_experiment_by_name("digitflow")
            for found in client.search_runs([experiment.experiment_id]) if experiment else []:
                if found.info.run_id not in known and found.info.status == "RUNNING":
                    return found
        time.sleep(0.3)


def run_ids(project: Path) -> set[str]:
    if not (project / "mlflow.db").exists():
        return set()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    return {r.info.run_id for r in client.search_runs([client.get_experiment_by_name("digitflow").experiment_id])}


@contextlib.contextmanager
def stage_process(project: Path, stage: str, **env: str) -> Iterator[subprocess.Popen]:
    """`python -m stages.STAGE` running in ``project``; killed (with its warm child) if the test fails."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=project,
        env=pipeline_env(**SESSION, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def model_files(project: Path) -> dict[str, bytes]:
    return {p.relative_to(project).as_posix(): p.read_bytes() for p in (project / "models").rglob("*") if p.is_file()}


@pytest.fixture
def long_training(reproduced_digits: Path, tmp_path: Path) -> Path:
    """A copy of the session's reproduced project whose training would take hours."""
    project = copy_project(reproduced_digits, tmp_path / "project")
    set_params(project, train_torch={"digits": {"epochs": 100000}})
    return project


def test_sigterm_to_a_warm_stage_ends_it_as_a_cold_one(long_training: Path) -> None:
    """SIGTERM to `python -m stages.train_torch` mid-training, warm and then cold: the same exit status
    and message, the MLflow run FAILED, the stage's process gone, the models as they were and no
    temporary file left."""
    project, before = long_training, model_files(long_training)
    outcomes = {}
    for mode, env in (("warm", {}), ("cold", COLD)):
        known = run_ids(project)
        with stage_process(project, "train_torch", **env) as stage:
            started = running_torch_run(project, known, stage)
            stage.send_signal(signal.SIGTERM)
            _stdout, stderr = stage.communicate(timeout=120)
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
        outcomes[mode] = {
            "returncode": stage.returncode,
            "stderr": [line for line in stderr.splitlines() if "interrupted" in line or "error" in line],
            "status": client.get_run(started.info.run_id).info.status,
        }
        pid = int(started.data.tags["digitflow.pid"])
        wait_until(lambda pid=pid: not process_alive(pid), 30, "the stage's process ends")
        assert model_files(project) == before
        assert [path for path in project.glob("models/**/*") if path.name.endswith(".tmp")] == []
    assert outcomes["warm"] == outcomes["cold"]
    assert outcomes["warm"] == {
        "returncode": 130,
        "stderr": ["[train_torch] interrupted; no output was written"],
        "status": "FAILED",
    }
    assert served(WARM_SERVER_DIR, project) == [("stages.train_torch", "exit 130")]


def test_sigkill_of_a_warm_stage_command_kills_its_child_and_the_run_ends_failed(long_training: Path) -> None:
    """The command killed outright: the server notices its connection close and kills the child, as the
    kernel would have killed a cold stage; the run's watchdog marks it FAILED."""
    project = long_training
    known = run_ids(project)
    with stage_process(project, "train_torch") as stage:
        started = running_torch_run(project, known, stage)
        child = int(started.data.tags["digitflow.pid"])
        assert child != stage.pid  # the stage runs in the server's child
        stage.kill()
        stage.communicate(timeout=30)
    wait_until(lambda: not process_alive(child), 30, "the server kills the child")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    wait_until(lambda: client.get_run(started.info.run_id).info.status == "FAILED", 60, "the watchdog ends the run")
    assert served(WARM_SERVER_DIR, project) == [("stages.train_torch", "signal 9")]


# --- who may connect -------------------------------------------------------------------------------

NOBODY = 65534
# A client with the standard library alone (an interpreter another user can run): one status request.
FOREIGN_CLIENT = r"""
import json, socket, struct, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"error": type(exc).__name__}))
    raise SystemExit
body = json.dumps({"op": "status"}).encode()
try:
    sock.sendall(struct.pack("!I", len(body)) + body)
except OSError:
    pass  # the server may refuse and hang up before reading: its answer is still there to read
data = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    data += chunk
print(data[4:].decode() if data else json.dumps({"error": "closed"}))
"""


def as_nobody(*command: str) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]


def foreign_interpreter() -> str:
    """An interpreter the user nobody can run (the test's own may live under /root)."""
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("running a client as another user needs root and setpriv")
    for candidate in (sys.executable, "/usr/bin/python3"):
        if subprocess.run(as_nobody(candidate, "-c", "pass"), cwd="/", capture_output=True).returncode == 0:
            return candidate
    pytest.skip("no Python interpreter that the user nobody may run")


def test_another_users_connection_is_refused(reproduced_digits: Path) -> None:
    """The folder is closed to everyone else (0700); opened by mistake, the server itself still refuses
    a connection from another uid (it checks the peer's credentials)."""
    python = foreign_interpreter()
    folder = WARM_SERVER_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.getuid()
    sockets = sorted(folder.glob("*.sock"))
    assert sockets, "the session's server (started for reproduced_digits) has a socket"
    socket_path = sockets[0]

    def connect() -> dict:
        result = subprocess.run(as_nobody(python, "-c", FOREIGN_CLIENT, str(socket_path)), cwd="/",
                                capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(result.stdout)

    assert connect() == {"error": "PermissionError"}
    try:
        folder.chmod(0o755)
        socket_path.chmod(0o777)
        answer = connect()
    finally:
        folder.chmod(0o700)
        socket_path.chmod(0o600)
    assert answer == {"refused": f"this server serves uid {os.getuid()} only, not uid {NOBODY}"}
    logs = "".join(log.read_text() for log in folder.glob("*.log"))
    assert f"refused a connection from uid {NOBODY}" in logs
    assert server_pids(folder)  # and it goes on serving


# --- a server's life: edits, keys, death, quiet period, stop ------------------------------------------


MINE = "serves stage commands started from this shell's environment"  # status, of the environment's server


def validate(project: Path, folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run(project, sys.executable, "-m", "stages.validate", DIGITFLOW_SERVER_DIR=str(folder), **env)


def test_a_servers_life(project_copy: Path) -> None:
    """In a folder of its own: a server started from a clone that is then deleted serves on; an edit of a
    project module is picked up by the next warm stage, and the modules the server itself loaded come
    from the stage's folder too; another OMP_NUM_THREADS (with an MLflow log level) starts
    another server, which stops after its quiet period; a SIGKILLed server makes the next stage run cold
    and start a new one; `digitflow server stop` leaves no process."""
    folder = Path(os.environ["DIGITFLOW_SERVER_DIR"]).parent / f"{WARM_SERVER_DIR.name}-life"
    folder.mkdir(mode=0o700)
    try:
        # Started by a stage in another clone, which is then deleted: the server serves on.
        starter = shutil.copytree(project_copy, project_copy.parent / "deleted-clone", symlinks=True)
        assert "[digitflow] starting a warm stage server" in validate(starter, folder).stderr
        wait_until(lambda: MINE in status(folder), 180, "the server starts", folder)
        shutil.rmtree(starter)
        (first,) = server_pids(folder)
        assert "[validate] params.yaml is valid" in validate(project_copy, folder).stderr

        module = project_copy / "digitflow/core/params.py"
        edit = '\nprint("[edited] digitflow.core.params", file=__import__("sys").stderr)\n'
        module.write_text(module.read_text() + edit)
        assert validate(project_copy, folder).stderr.count("[edited] digitflow.core.params") == 1
        (project_copy / "stages/where.py").write_text(
            "import sys\nprint(*(sys.modules[name].__file__ for name in sys.modules if name.startswith('digitflow')))\n"
        )
        loaded = run(project_copy, sys.executable, "-m", "stages.where", DIGITFLOW_SERVER_DIR=str(folder)).stdout
        assert {"digitflow/__init__.py", "digitflow/core/__init__.py", "digitflow/core/determinism.py"} <= {
            Path(file).relative_to(project_copy).as_posix() for file in loaded.split()
        }  # from the stage's folder (a path elsewhere would fail relative_to), not the server's
        assert served(folder, project_copy) == [("stages.validate", "exit 0")] * 2 + [("stages.where", "exit 0")]
        assert served(folder, starter) == []  # it ran cold: the server was not ready yet
        assert server_pids(folder) == [first]

        # MLflow's logging level is part of the key too (read at import), and an MLFLOW_ variable, which
        # the server's start must pass on although it passes on no other MLFLOW_ setting.
        other = validate(
            project_copy, folder, OMP_NUM_THREADS="3", MLFLOW_LOGGING_LEVEL="ERROR", DIGITFLOW_SERVER_IDLE="8"
        )
        assert "[digitflow] starting a warm stage server" in other.stderr
        assert "[validate] params.yaml is valid" in other.stderr  # cold, meanwhile
        wait_until(lambda: "OMP_NUM_THREADS=3" in status(folder), 180, "a second server starts", folder)
        (second,) = set(server_pids(folder)) - {first}

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: not process_alive(first), 10, "the server dies")
        after = validate(project_copy, folder)
        assert "[digitflow] the warm stage server is gone; running this stage cold; a new server is starting" in (
            after.stderr
        )
        assert "[validate] params.yaml is valid" in after.stderr
        wait_until(lambda: MINE in status(folder), 180, "a new server starts", folder)
        validate(project_copy, folder)
        assert served(folder, project_copy)[-1] == ("stages.validate", "exit 0")
        assert len(served(folder, project_copy)) == 4

        wait_until(lambda: not process_alive(second), 60, "the OMP_NUM_THREADS=3 server stops when quiet", folder)
        assert "OMP_NUM_THREADS=3" not in status(folder)
        (third,) = server_pids(folder)
        stop = readme_command("digitflow server stop")
        assert run(project_copy, "bash", "-c", stop, DIGITFLOW_SERVER_DIR=str(folder)).stdout == (
            f"stopped the warm stage server (pid {third})\n"
        )
        assert not process_alive(third)
        assert list(folder.glob("*.sock")) == []
        assert "no warm stage server is running" in status(folder)
        assert "stages run cold" in status(folder, DIGITFLOW_SERVER="0")
        assert server_processes(folder) == []
    finally:
        run(Path("/"), "digitflow", "server", "stop", DIGITFLOW_SERVER_DIR=str(folder), check=False)
        shutil.rmtree(folder, ignore_errors=True)

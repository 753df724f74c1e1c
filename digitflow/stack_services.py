"""The pieces of the team stack: its settings, Debian's PostgreSQL, and processes stopped by PID.

Everything the stack needs to restart with the same data lives in one state folder (``.stack/`` by
default, git-ignored): the settings with their generated secrets (``stack.json``, mode 0600), the
SeaweedFS data, the MLflow auth ini, each service's PID file and log. PostgreSQL keeps its data in
Debian's cluster; the stack only creates a role and two databases there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from digitflow.errors import DigitflowError

HOST = "127.0.0.1"
CONFIG_NAME = "stack.json"
# Preferred ports; any that is taken when the stack is first set up is replaced by a free one, and the
# choice is kept in stack.json so a restart uses the same addresses.
DEFAULT_PORTS = {
    "mlflow": 5000,
    "s3": 8333,
    "s3_grpc": 18333,
    "master": 9333,
    "master_grpc": 19333,
    "volume": 8080,
    "volume_grpc": 18080,
    "filer": 8888,
    "filer_grpc": 18888,
    "admin": 23646,
    "admin_grpc": 33646,
}
ARTIFACTS_BUCKET = "digitflow-mlflow"
# The stack's bucket for the DVC remote; `python -m digitflow.stack dvc-remote` makes it this clone's
# default remote `team`, in .dvc/config.local (the committed .dvc/config names no remote).
DVC_BUCKET = "digitflow-dvc"
DVC_REMOTE = "team"
DVC_URL = f"s3://{DVC_BUCKET}"


class StackError(DigitflowError):
    """The team stack cannot start, stop or be reached as asked."""


@dataclass
class StackConfig:
    """The stack's addresses, names and secrets, fixed when it is first set up."""

    name: str = "digitflow"
    ports: dict[str, int] = field(default_factory=dict)
    pg_version: str = ""
    pg_cluster: str = "main"
    pg_port: int = 5432
    pg_password: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    admin_username: str = "admin"
    admin_password: str = ""
    flask_secret: str = ""

    @property
    def pg_user(self) -> str:
        return self.name

    @property
    def mlflow_db(self) -> str:
        return f"{self.name}_mlflow"

    @property
    def auth_db(self) -> str:
        return f"{self.name}_auth"

    def db_uri(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.pg_user}:{self.pg_password}@{HOST}:{self.pg_port}/{database}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.ports['mlflow']}"

    @property
    def s3_url(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def choose_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    for name, port in DEFAULT_PORTS.items():
        while port in chosen.values() or not port_is_free(port):
            port = free_port()
        chosen[name] = port
    return chosen


def load_or_create_config(state: Path, name: str) -> StackConfig:
    """Read ``state/stack.json``, or create it with free ports and new secrets (readable by the owner only)."""
    path = state / CONFIG_NAME
    if path.exists():
        return StackConfig(**json.loads(path.read_text()))
    if not name.isidentifier() or name != name.lower():
        raise StackError(f"--name {name!r} must be lowercase letters, digits and underscores (a PostgreSQL name)")
    version, cluster, port, _ = pg_cluster()
    config = StackConfig(
        name=name,
        ports=choose_ports(),
        pg_version=version,
        pg_cluster=cluster,
        pg_port=port,
        pg_password=secrets.token_hex(16),
        s3_access_key="digitflow" + secrets.token_hex(6),
        s3_secret_key=secrets.token_hex(20),
        # An admin password from the environment wins, so a team can choose it; otherwise one is generated.
        admin_password=os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD") or secrets.token_urlsafe(18),
        flask_secret=secrets.token_hex(24),
    )
    state.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(asdict(config), indent=2) + "\n")
    return config


def write_private(path: Path, text: str) -> None:
    """Write a file holding secrets, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


# --- PostgreSQL (Debian's cluster) ---------------------------------------------------------------


def pg_cluster() -> tuple[str, str, int, str]:
    """(version, cluster, port, status) of the first Debian PostgreSQL cluster."""
    if not shutil.which("pg_lsclusters"):
        raise StackError("PostgreSQL is not installed; install it with `sudo apt-get install -y postgresql`")
    lines = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split("\n")
    fields = [line.split() for line in lines if line.strip()]
    if not fields:
        raise StackError("no PostgreSQL cluster exists; create one with `sudo pg_createcluster 15 main`")
    version, cluster, port, status = fields[0][:4]
    return version, cluster, int(port), status


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return ["sudo", "-n", "-u", "postgres", *command]


def ensure_postgres(config: StackConfig) -> bool:
    """Start the cluster if it is down; return whether this call started it."""
    *_, status = pg_cluster()
    if status == "online":
        return False
    command = ["pg_ctlcluster", config.pg_version, config.pg_cluster, "start"]
    result = subprocess.run(command if os.geteuid() == 0 else ["sudo", "-n", *command], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"could not start PostgreSQL ({' '.join(command)}): {result.stderr.strip()}")
    return True


def stop_postgres(config: StackConfig) -> None:
    command = ["pg_ctlcluster", config.pg_version, config.pg_cluster, "stop"]
    subprocess.run(command if os.geteuid() == 0 else ["sudo", "-n", *command], capture_output=True, check=False)


def psql(config: StackConfig, sql: str) -> str:
    """Run SQL as the ``postgres`` superuser (root, or passwordless sudo) and return its output."""
    command = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(config.pg_port), "-d", "postgres"]
    result = subprocess.run(_as_postgres([*command, "-c", sql]), capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        raise StackError(
            f"PostgreSQL refused `{sql.split()[0]} ...`: {result.stderr.strip()}\n"
            "The stack administers Debian's cluster as the `postgres` user: run it as root or with passwordless sudo."
        )
    return result.stdout.strip()


def ensure_databases(config: StackConfig) -> None:
    """Create (or re-password) the stack's role and its two databases: MLflow's store and the auth store."""
    role = config.pg_user
    exists = psql(config, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == "1"
    verb = "ALTER" if exists else "CREATE"
    psql(config, f"{verb} ROLE {role} WITH LOGIN PASSWORD '{config.pg_password}'")
    for database in (config.mlflow_db, config.auth_db):
        if psql(config, f"SELECT 1 FROM pg_database WHERE datname = '{database}'") != "1":
            psql(config, f"CREATE DATABASE {database} OWNER {role}")


def drop_databases(config: StackConfig) -> None:
    for database in (config.mlflow_db, config.auth_db):
        psql(config, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(config, f"DROP ROLE IF EXISTS {config.pg_user}")


# --- processes ------------------------------------------------------------------------------------


def read_pid(pid_file: Path) -> int | None:
    """The PID in ``pid_file`` if that process is still alive, else None (a stale file is removed)."""
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().strip() or 0)
    if pid > 0 and Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        return pid
    pid_file.unlink()
    return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``: a service and every worker it started."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    members.append(int(entry.name))
    return members


def start_process(command: list[str], env: dict[str, str], log_file: Path, pid_file: Path) -> int:
    """Start a service in its own process group (so it and its workers stop together); record its PID."""
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop_process(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process group of the PID in ``pid_file``, wait for all of it, SIGKILL what is left."""
    pid = read_pid(pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_members(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.2)
    if group_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while group_members(pid):
            _reap(pid)
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    # A service started by this same Python process stays a zombie until it is waited for.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(ready: Callable[[], bool], pid_file: Path, log_file: Path, what: str, timeout: float) -> None:
    """Poll ``ready()`` until it is true; fail with the log's tail if the process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if read_pid(pid_file) is None:
            raise StackError(f"{what} exited while starting; the end of {log_file}:\n{tail(log_file)}")
        time.sleep(0.5)
    raise StackError(f"{what} did not answer within {timeout:.0f} s; the end of {log_file}:\n{tail(log_file)}")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

"""The team stack's settings: addresses, names and generated secrets, fixed at the first ``up``.

Everything the stack needs to restart with the same data lives in one state folder (``.stack/`` by
default, git-ignored): the settings with their generated secrets (``stack.json``, mode 0600), the
SeaweedFS data, the MLflow auth ini, each service's PID file and log. PostgreSQL keeps its data in
Debian's cluster; the stack only creates a role and two databases there (``team.postgres``).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from digitflow.core.errors import DigitflowError
from digitflow.core.ports import HOST, free_port, port_is_free

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
# The stack's bucket for the DVC remote; `digitflow stack dvc-remote` makes it this clone's default
# remote `team`, in .dvc/config.local (the committed .dvc/config names no remote).
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


def choose_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    for name, port in DEFAULT_PORTS.items():
        while port in chosen.values() or not port_is_free(port):
            port = free_port()
        chosen[name] = port
    return chosen


def load_config(state: Path) -> StackConfig:
    """The settings of the stack set up in ``state``; an error saying how to set one up if there is none."""
    path = state / CONFIG_NAME
    if not path.exists():
        raise StackError(f"no stack is set up in {state}; start one with `digitflow stack up`")
    return StackConfig(**json.loads(path.read_text()))


def create_config(state: Path, name: str, pg_version: str, pg_cluster: str, pg_port: int) -> StackConfig:
    """New settings for a stack named ``name`` on the given PostgreSQL cluster: free ports and new secrets,
    written to ``state/stack.json`` readable by the owner only."""
    if not name.isidentifier() or name != name.lower():
        raise StackError(f"--name {name!r} must be lowercase letters, digits and underscores (a PostgreSQL name)")
    config = StackConfig(
        name=name,
        ports=choose_ports(),
        pg_version=pg_version,
        pg_cluster=pg_cluster,
        pg_port=pg_port,
        pg_password=secrets.token_hex(16),
        s3_access_key="digitflow" + secrets.token_hex(6),
        s3_secret_key=secrets.token_hex(20),
        # An admin password from the environment wins, so a team can choose it; otherwise one is generated.
        admin_password=os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD") or secrets.token_urlsafe(18),
        flask_secret=secrets.token_hex(24),
    )
    write_private(state / CONFIG_NAME, json.dumps(asdict(config), indent=2) + "\n")
    return config


def write_private(path: Path, text: str) -> None:
    """Write a file holding secrets, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)

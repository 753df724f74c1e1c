"""The team stack's settings: addresses, names and generated secrets, fixed at the first ``up``.

Everything the stack needs to restart with the same data lives in one state folder (``.stack/`` by
default, git-ignored, mode 0700): the settings with their generated secrets (``stack.json``, mode 0600),
each account's credentials (``users/``, mode 0600), the SeaweedFS data and its identities, the MLflow auth
ini, each service's PID file and log. PostgreSQL keeps its data in Debian's cluster; the stack only creates
a role and two databases there (``team.postgres``). Secret files are written atomically, 0600, replacing a
symbolic link rather than following it (``core.io.write_private``).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from digitflow.core.errors import DigitflowError
from digitflow.core.io import write_private
from digitflow.core.ports import HOST, free_port, port_is_free

CONFIG_NAME = "stack.json"
USERS_DIR = "users"
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
# The DVC key `up` issues to the stack's admin, for `digitflow stack dvc-remote` in their own clone.
ADMIN_DVC_USER = "admin"
# What a DVC key may do with the DVC bucket (SeaweedFS actions); no DVC key reaches the artifacts bucket.
DVC_ACCESS = {"read": ("Read", "List"), "write": ("Read", "Write", "List")}
MIN_PASSWORD_LENGTH = 12


class StackError(DigitflowError):
    """The team stack cannot start, stop or be reached as asked."""


@dataclass
class StackConfig:
    """The stack's addresses, names and secrets, fixed when it is first set up.

    ``s3_access_key`` / ``s3_secret_key`` are the MLflow server's S3 identity, the only one that may write
    the artifacts bucket; ``dvc_keys`` the DVC users' own keys (name -> access_key, secret_key, access),
    each reaching the DVC bucket only, with ``access`` "read" or "write"."""

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
    dvc_keys: dict[str, dict[str, str]] = field(default_factory=dict)

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


def check_password(password: str, whose: str) -> str:
    """``password`` if it has at least ``MIN_PASSWORD_LENGTH`` characters; else the error that says so."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StackError(
            f"{whose} has {len(password)} characters; a password needs at least {MIN_PASSWORD_LENGTH} "
            "(or leave it out and one is generated)"
        )
    return password


def choose_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    for name, port in DEFAULT_PORTS.items():
        while port in chosen.values() or not port_is_free(port):
            port = free_port()
        chosen[name] = port
    return chosen


def private_folder(path: Path) -> Path:
    """``path`` as a folder only its owner may enter (0700), made if missing."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def load_config(state: Path) -> StackConfig:
    """The settings of the stack set up in ``state``; an error saying how to set one up if there is none."""
    path = state / CONFIG_NAME
    if not path.exists():
        raise StackError(f"no stack is set up in {state}; start one with `digitflow stack up`")
    return StackConfig(**json.loads(path.read_text()))


def save_config(state: Path, config: StackConfig) -> None:
    write_private(private_folder(state) / CONFIG_NAME, json.dumps(asdict(config), indent=2) + "\n")


def new_dvc_key(access: str) -> dict[str, str]:
    return {"access_key": "dvc" + secrets.token_hex(8), "secret_key": secrets.token_hex(20), "access": access}


def create_config(state: Path, name: str, pg_version: str, pg_cluster: str, pg_port: int) -> StackConfig:
    """New settings for a stack named ``name`` on the given PostgreSQL cluster: free ports and new secrets,
    written to ``state/stack.json`` readable by the owner only."""
    if not name.isidentifier() or name != name.lower():
        raise StackError(f"--name {name!r} must be lowercase letters, digits and underscores (a PostgreSQL name)")
    # An admin password from the environment wins, so a team can choose it; otherwise one is generated.
    chosen = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD")
    admin_password = check_password(chosen, "MLFLOW_AUTH_ADMIN_PASSWORD") if chosen else secrets.token_urlsafe(18)
    config = StackConfig(
        name=name,
        ports=choose_ports(),
        pg_version=pg_version,
        pg_cluster=pg_cluster,
        pg_port=pg_port,
        pg_password=secrets.token_hex(16),
        s3_access_key="mlflow" + secrets.token_hex(6),
        s3_secret_key=secrets.token_hex(20),
        admin_password=admin_password,
        flask_secret=secrets.token_hex(24),
        dvc_keys={ADMIN_DVC_USER: new_dvc_key("write")},
    )
    save_config(state, config)
    return config


def s3_identities(config: StackConfig) -> dict:
    """SeaweedFS's identities (its ``-s3.config`` file): the MLflow server on the artifacts bucket alone, each
    DVC key on the DVC bucket alone, read-only or read-write. No identity is an administrator."""
    server = {
        "name": "mlflow-server",
        "credentials": [{"accessKey": config.s3_access_key, "secretKey": config.s3_secret_key}],
        "actions": [f"{action}:{ARTIFACTS_BUCKET}" for action in ("Read", "Write", "List")],
    }
    users = [
        {
            "name": f"dvc-{user}",
            "credentials": [{"accessKey": key["access_key"], "secretKey": key["secret_key"]}],
            "actions": [f"{action}:{DVC_BUCKET}" for action in DVC_ACCESS[key["access"]]],
        }
        for user, key in sorted(config.dvc_keys.items())
    ]
    return {"identities": [server, *users]}


def user_files(state: Path, username: str) -> tuple[Path, Path]:
    """Where an account's credentials are kept, 0600: its MLflow exports and its DVC key (AWS's format)."""
    folder = state / USERS_DIR
    return folder / f"{username}.env", folder / f"{username}.aws"


AWS_PROFILE = "digitflow"


def write_dvc_credentials(state: Path, username: str, key: dict[str, str]) -> Path:
    """The DVC key of ``username`` as an AWS shared-credentials file (profile ``digitflow``), which DVC reads
    through ``credentialpath``: the secret never goes through a command line."""
    _env, aws = user_files(state, username)
    private_folder(aws.parent)
    write_private(
        aws,
        f"[{AWS_PROFILE}]\naws_access_key_id = {key['access_key']}\naws_secret_access_key = {key['secret_key']}\n",
    )
    return aws

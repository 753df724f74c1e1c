"""The two servers of the team stack, each started in its own process group and checked before `up` returns:
SeaweedFS (`weed mini`, S3) and the MLflow server with basic auth on PostgreSQL and S3 proxied artifacts.

SeaweedFS knows one S3 identity per holder (``config.s3_identities``): the MLflow server's, on the artifacts
bucket alone, and each DVC user's, on the DVC bucket alone. ``reload_s3_identities`` rewrites them and
signals SeaweedFS (SIGHUP re-reads its ``-s3.config`` file), so a key is issued or revoked while it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from digitflow.core.io import write_private
from digitflow.core.names import REGISTERED_MODELS
from digitflow.core.processes import isolated_env
from digitflow.team.config import (
    ADMIN_DVC_USER,
    ARTIFACTS_BUCKET,
    CONFIG_NAME,
    DVC_BUCKET,
    HOST,
    StackConfig,
    StackError,
    s3_identities,
)
from digitflow.team.supervisor import read_pid, start_process, wait_until

START_TIMEOUT_S = 180.0


def executable(name: str, extra: str = "team") -> str:
    """A tool from this interpreter's environment (where `pip install` put it), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise StackError(f"`{name}` is not installed; install the team extra: pip install -e '.[{extra}]'")
    return found


def _http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    import requests

    try:
        return requests.get(url, auth=auth, timeout=5).status_code
    except requests.RequestException:
        return 0


def bucket_reachable(config: StackConfig, bucket: str, access_key: str, secret_key: str) -> bool:
    """Whether SeaweedFS answers ``bucket`` to this key (a key it does not know, or not yet, gets no)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=config.s3_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    try:
        client.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError):
        return False
    return True


def _buckets_ready(config: StackConfig) -> bool:
    admin = config.dvc_keys[ADMIN_DVC_USER]
    return bucket_reachable(config, ARTIFACTS_BUCKET, config.s3_access_key, config.s3_secret_key) and (
        bucket_reachable(config, DVC_BUCKET, admin["access_key"], admin["secret_key"])
    )


def _write_s3_identities(config: StackConfig, state: Path) -> Path:
    s3_json = state / "s3.json"
    write_private(s3_json, json.dumps(s3_identities(config), indent=2) + "\n")
    return s3_json


def reload_s3_identities(config: StackConfig, state: Path, new_key: dict[str, str] | None = None) -> None:
    """Rewrite SeaweedFS's identities from ``config`` and have a running SeaweedFS re-read them (SIGHUP);
    with ``new_key``, wait until that key is accepted, so the account works when this returns."""
    _write_s3_identities(config, state)
    pid = read_pid(state / "seaweedfs.pid")
    if pid is None:
        return  # read at the next `up`
    os.kill(pid, signal.SIGHUP)
    if new_key is None:
        return
    deadline = time.monotonic() + 30
    while not bucket_reachable(config, DVC_BUCKET, new_key["access_key"], new_key["secret_key"]):
        if time.monotonic() > deadline:
            raise StackError(f"SeaweedFS did not take the new key within 30 s; see {state / 'seaweedfs.log'}")
        time.sleep(0.3)


def start_seaweedfs(config: StackConfig, state: Path) -> bool:
    pid_file = state / "seaweedfs.pid"
    if read_pid(pid_file):
        return False
    s3_json = _write_s3_identities(config, state)
    ports = config.ports
    command = [
        executable("weed"),
        "mini",
        f"-dir={state / 'seaweedfs'}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-s3.config={s3_json}",
        f"-bucket={ARTIFACTS_BUCKET},{DVC_BUCKET}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{name.replace('_grpc', '.port.grpc')}={port}" for name, port in ports.items() if name.endswith("_grpc")),
        *(f"-{name}.port={port}" for name, port in ports.items() if name != "mlflow" and not name.endswith("_grpc")),
    ]
    (state / "seaweedfs").mkdir(parents=True, exist_ok=True)
    log_file = state / "seaweedfs.log"
    start_process(command, isolated_env(), log_file, pid_file)
    wait_until(lambda: _buckets_ready(config), pid_file, log_file, "SeaweedFS", START_TIMEOUT_S)
    return True


def start_mlflow(config: StackConfig, state: Path, workers: int) -> bool:
    pid_file = state / "mlflow.pid"
    if read_pid(pid_file):
        return False
    auth_ini = state / "basic_auth.ini"
    write_private(
        auth_ini,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {config.db_uri(config.auth_db)}\n"
        f"admin_username = {config.admin_username}\n"
        f"admin_password = {config.admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # 0 (MLflow's default) re-hashes the password on every request: ~1 s per logged metric.
        "auth_cache_ttl_seconds = 60\n",
    )
    env = isolated_env(
        MLFLOW_BACKEND_STORE_URI=config.db_uri(config.mlflow_db),  # in the environment, not in `ps`
        MLFLOW_AUTH_CONFIG_PATH=str(auth_ini),
        MLFLOW_FLASK_SERVER_SECRET_KEY=config.flask_secret,
        # Background job workers outlive a SIGTERM; this stack has no use for them.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_S3_ENDPOINT_URL=config.s3_url,
        AWS_ACCESS_KEY_ID=config.s3_access_key,
        AWS_SECRET_ACCESS_KEY=config.s3_secret_key,
        AWS_DEFAULT_REGION="us-east-1",
    )
    command = [
        executable("mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        HOST,
        "--port",
        str(config.ports["mlflow"]),
        "--artifacts-destination",
        f"s3://{ARTIFACTS_BUCKET}",
        "--workers",
        str(workers),
    ]
    log_file = state / "mlflow.log"
    start_process(command, env, log_file, pid_file)
    health = f"{config.mlflow_url}/health"
    wait_until(lambda: _http_status(health) == 200, pid_file, log_file, "the MLflow server", START_TIMEOUT_S)
    admin = f"{config.mlflow_url}/api/2.0/mlflow/users/get?username={config.admin_username}"
    if _http_status(admin, (config.admin_username, config.admin_password)) != 200:
        raise StackError(
            f"the MLflow server does not accept the admin password in {state / CONFIG_NAME}: the auth database "
            f"{config.auth_db} was set up with another one. Use that password, or `down --purge` to start afresh."
        )
    ensure_registered_models(config)
    return True


def ensure_registered_models(config: StackConfig) -> None:
    """Create the registered models as the admin. MLflow lets any signed-in user create a registered model
    and makes them its manager (MANAGE): one that does not exist yet could be claimed by whoever trains
    first. Created by the admin, they belong to no teammate; `add-user --promote` grants the right to them."""
    import requests

    auth = (config.admin_username, config.admin_password)
    api = f"{config.mlflow_url}/api/2.0/mlflow/registered-models"
    for name in REGISTERED_MODELS.values():
        if requests.get(f"{api}/get", params={"name": name}, auth=auth, timeout=30).status_code == 200:
            continue
        created = requests.post(f"{api}/create", json={"name": name}, auth=auth, timeout=30)
        if created.status_code != 200:
            raise StackError(f"the MLflow server refused to create the registered model {name}: {created.text[:300]}")

"""The team stack on one machine, bound to 127.0.0.1: PostgreSQL, SeaweedFS (S3) and an MLflow server
with basic auth, PostgreSQL as its store and S3 proxied artifacts; SeaweedFS also holds the DVC remote.
What ``digitflow stack up|down|status|env|dvc-remote|add-user`` does (the command line is ``digitflow.cli``).

Data survives ``down``/``up``: the state folder (``.stack/``, git-ignored) keeps the settings, secrets
and S3 data, and PostgreSQL keeps the databases. A real deployment uses the same layout with a managed
PostgreSQL and S3 (docs/team.md).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
from pathlib import Path
from urllib.parse import urlparse

from digitflow.core.names import REGISTERED_MODELS
from digitflow.team.config import (
    ARTIFACTS_BUCKET,
    CONFIG_NAME,
    DVC_BUCKET,
    DVC_REMOTE,
    DVC_URL,
    HOST,
    StackConfig,
    StackError,
    create_config,
    load_config,
)
from digitflow.team.postgres import drop_databases, ensure_databases, ensure_postgres, pg_cluster, stop_postgres
from digitflow.team.servers import start_mlflow, start_seaweedfs
from digitflow.team.supervisor import read_pid, stop_process

DEFAULT_STATE = Path(".stack")


def up(state: Path, name: str, workers: int) -> StackConfig:
    """Start every service that is not running; on failure stop what this call started."""
    if (state / CONFIG_NAME).exists():
        config = load_config(state)
    else:
        version, cluster, port, _status = pg_cluster()
        config = create_config(state, name, version, cluster, port)
    if ensure_postgres(config):
        (state / "postgres.started").touch()
    ensure_databases(config)
    try:
        start_seaweedfs(config, state)
        start_mlflow(config, state, workers)
    except BaseException:
        down(state, purge=False)
        raise
    return config


def down(state: Path, purge: bool) -> list[str]:
    """Stop the MLflow server and SeaweedFS by PID, with their workers; PostgreSQL only if `up` started it."""
    stopped = [name for name in ("mlflow", "seaweedfs") if stop_process(state / f"{name}.pid")]
    if not (state / CONFIG_NAME).exists():
        return stopped
    config = load_config(state)
    started_pg = (state / "postgres.started").exists()
    if purge:
        started_pg = ensure_postgres(config) or started_pg  # to drop the databases, then stopped again
        drop_databases(config)
        shutil.rmtree(state)
    else:
        (state / "postgres.started").unlink(missing_ok=True)
    if started_pg:
        stop_postgres(config)
        stopped.append("postgresql")
    return stopped


def env_lines(config: StackConfig) -> list[str]:
    values = {
        "MLFLOW_TRACKING_URI": config.mlflow_url,
        "MLFLOW_TRACKING_USERNAME": config.admin_username,
        "MLFLOW_TRACKING_PASSWORD": config.admin_password,
    }
    return [f"export {key}={shlex.quote(value)}" for key, value in values.items()]


def dvc_plugin(url: str) -> tuple[str, str] | None:
    """The DVC plugin that reaches ``url`` as (module, pip package), e.g. ``("dvc_s3", "dvc-s3")`` for
    ``s3://...``; ``None`` where DVC needs none (a local path) or does not know the scheme (it says so
    itself). Read from DVC's own table of filesystems, so it names what DVC's error would name."""
    from dvc_objects.fs import known_implementations

    implementation = known_implementations.get(urlparse(url).scheme or "local")
    module = implementation["class"].split(".", 1)[0] if implementation else "dvc_objects"
    return None if module == "dvc_objects" else (module, module.replace("_", "-"))


def require_dvc_plugin(url: str, extra: str = "team") -> None:
    """Refuse, naming what to install, a remote whose plugin is missing: otherwise DVC's error would only
    surface later, in every `dvc exp run`, `dvc plots show` or `dvc data status` of this clone."""
    plugin = dvc_plugin(url)
    if plugin and importlib.util.find_spec(plugin[0]) is None:
        raise StackError(
            f"the DVC remote {url} needs DVC's {plugin[1]} plugin, which is not installed here; "
            f'install the {extra} extra first: pip install -e ".[{extra}]"'
        )


def dvc_remote_commands(config: StackConfig) -> list[list[str]]:
    """Make the stack's bucket this clone's default remote: `dvc remote add --local -d --force` (so that
    running it again replaces the remote instead of failing), then `dvc remote modify --local` for the
    endpoint, the keys, and hash checks on download. All of it goes to .dvc/config.local, which git ignores."""
    settings = {
        "endpointurl": config.s3_url,
        "access_key_id": config.s3_access_key,
        "secret_access_key": config.s3_secret_key,
        "verify": "true",
    }
    add = ["dvc", "remote", "add", "--local", "-d", "--force", DVC_REMOTE, DVC_URL]
    return [add] + [["dvc", "remote", "modify", "--local", DVC_REMOTE, key, value] for key, value in settings.items()]


def summary(config: StackConfig, state: Path) -> str:
    remote = "\n".join(shlex.join(command) for command in dvc_remote_commands(config))
    return (
        f"MLflow     {config.mlflow_url} (admin {config.admin_username!r}, password in {state / CONFIG_NAME})\n"
        f"S3         {config.s3_url}   (buckets {ARTIFACTS_BUCKET}, {DVC_BUCKET})\n"
        f"PostgreSQL {HOST}:{config.pg_port}   (databases {config.mlflow_db}, {config.auth_db})\n\n"
        '# Log the pipeline to the server (or: eval "$(digitflow stack env)"):\n'
        + "\n".join(env_lines(config))
        + "\n\n# Make the stack this clone's default DVC remote (or: digitflow stack dvc-remote):\n"
        + remote
        + "\n"
    )


def add_user(
    config: StackConfig, username: str, password: str | None, permission: str, experiment: str
) -> tuple[str, str | None]:
    """Create an account (as the admin; a generated password if none is given), or reset an existing one's
    password if one is given, and grant it ``permission`` on the experiment (created if missing) and on the
    registered models that exist. Returns the experiment id and the password that was set, if any."""
    import secrets

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = config.admin_username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = config.admin_password
    auth = AuthServiceClient(config.mlflow_url)
    try:
        new_password = password or secrets.token_urlsafe(12)
        try:
            auth.create_user(username, new_password)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            new_password = password
            if password:
                auth.update_user_password(username, password)
        client = mlflow.MlflowClient(config.mlflow_url)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        grants = [("experiment", experiment_id)] + [
            ("registered_model", model)
            for model in REGISTERED_MODELS.values()
            if client.search_registered_models(filter_string=f"name = '{model}'")
        ]
        for resource_type, resource_id in grants:
            try:
                auth.grant_user_permission(username, resource_type, resource_id, permission)
            except MlflowException as exc:  # an earlier grant: replace it
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                auth.revoke_user_permission(username, resource_type, resource_id)
                auth.grant_user_permission(username, resource_type, resource_id, permission)
    except MlflowException as exc:
        raise StackError(f"the MLflow server at {config.mlflow_url} refused: {exc.message}") from None
    return experiment_id, new_password


def status_lines(state: Path) -> list[str]:
    """One line per service: running (with its PID) or stopped, and its address."""
    config = load_config(state)
    lines = []
    for name, url in (("mlflow", config.mlflow_url), ("seaweedfs", config.s3_url)):
        pid = read_pid(state / f"{name}.pid")
        lines.append(f"{name:<11}{'running (pid ' + str(pid) + ')' if pid else 'stopped':<22}{url}")
    lines.append(f"{'postgresql':<11}{pg_cluster()[3]:<22}{HOST}:{config.pg_port}")
    return lines

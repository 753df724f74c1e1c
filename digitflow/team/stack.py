"""The team stack on one machine, bound to 127.0.0.1: PostgreSQL, SeaweedFS (S3) and an MLflow server
with basic auth, PostgreSQL as its store and S3 proxied artifacts; SeaweedFS also holds the DVC remote.
What ``digitflow stack up|down|status|env|dvc-remote|add-user`` does (the command line is ``digitflow.cli``).

Data survives ``down``/``up``: the state folder (``.stack/``, git-ignored) keeps the settings, secrets
and S3 data, and PostgreSQL keeps the databases. A real deployment uses the same layout with a managed
PostgreSQL and S3 (docs/team.md).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from urllib.parse import urlparse

from digitflow.team.accounts import env_exports, read_env_file
from digitflow.team.config import (
    ADMIN_DVC_USER,
    ARTIFACTS_BUCKET,
    AWS_PROFILE,
    CONFIG_NAME,
    DVC_BUCKET,
    DVC_REMOTE,
    DVC_URL,
    HOST,
    StackConfig,
    StackError,
    create_config,
    load_config,
    new_dvc_key,
    private_folder,
    save_config,
    user_files,
    write_dvc_credentials,
)
from digitflow.team.postgres import drop_databases, ensure_databases, ensure_postgres, pg_cluster, stop_postgres
from digitflow.team.servers import start_mlflow, start_seaweedfs
from digitflow.team.supervisor import read_pid, stop_process

DEFAULT_STATE = Path(".stack")


def up(state: Path, name: str, workers: int) -> StackConfig:
    """Start every service that is not running; on failure stop what this call started."""
    private_folder(state)
    if (state / CONFIG_NAME).exists():
        config = load_config(state)
        if ADMIN_DVC_USER not in config.dvc_keys:  # set up before DVC keys were per user
            config.dvc_keys[ADMIN_DVC_USER] = new_dvc_key("write")
            save_config(state, config)
    else:
        version, cluster, port, _status = pg_cluster()
        config = create_config(state, name, version, cluster, port)
    write_dvc_credentials(state, ADMIN_DVC_USER, config.dvc_keys[ADMIN_DVC_USER])
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


def env_text(config: StackConfig, state: Path, username: str | None = None) -> str:
    """The exports that make the pipeline log to the server as the admin, or as ``username`` (from the
    file ``add-user`` wrote), for ``eval "$(digitflow stack env)"``: the password goes through a pipe."""
    if username is None or username == config.admin_username:
        return env_exports(config.mlflow_url, config.admin_username, config.admin_password)
    return read_env_file(state, username)


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


def dvc_remote_commands(config: StackConfig, state: Path, username: str = ADMIN_DVC_USER) -> list[list[str]]:
    """Make the stack's bucket this clone's default remote: `dvc remote add --local -d --force` (so that
    running it again replaces the remote instead of failing), then `dvc remote modify --local` for the
    endpoint, the account's DVC key (the path of its credentials file: the secret stays out of the command
    line and of .dvc/config.local) and hash checks on download (`verify`: a file changed in the bucket is
    refused by `dvc pull`). All of it goes to .dvc/config.local, which git ignores."""
    if username not in config.dvc_keys:
        raise StackError(
            f"{username!r} has no DVC key; issue one with `digitflow stack add-user {username} --dvc read` (or write)"
        )
    _env, credentials = user_files(state, username)
    settings = {
        "endpointurl": config.s3_url,
        "credentialpath": str(credentials.resolve()),
        "profile": AWS_PROFILE,
        "verify": "true",
    }
    add = ["dvc", "remote", "add", "--local", "-d", "--force", DVC_REMOTE, DVC_URL]
    return [add] + [["dvc", "remote", "modify", "--local", DVC_REMOTE, key, value] for key, value in settings.items()]


def summary(config: StackConfig, state: Path) -> str:
    """What `up` prints: the addresses, and where the secrets are, never the secrets themselves."""
    _env, credentials = user_files(state, ADMIN_DVC_USER)
    return (
        f"MLflow     {config.mlflow_url} (admin {config.admin_username!r}, password in {state / CONFIG_NAME})\n"
        f"S3         {config.s3_url}   (buckets {ARTIFACTS_BUCKET}, {DVC_BUCKET}; your DVC key in {credentials})\n"
        f"PostgreSQL {HOST}:{config.pg_port}   (databases {config.mlflow_db}, {config.auth_db})\n\n"
        '# Log the pipeline to the server as the admin:  eval "$(digitflow stack env)"\n'
        "# Make the stack this clone's default DVC remote: digitflow stack dvc-remote\n"
        "# Add a teammate who logs runs and pushes data:  digitflow stack add-user NAME --permission EDIT --dvc write\n"
    )


def status_lines(state: Path) -> list[str]:
    """One line per service: running (with its PID) or stopped, and its address."""
    config = load_config(state)
    lines = []
    for name, url in (("mlflow", config.mlflow_url), ("seaweedfs", config.s3_url)):
        pid = read_pid(state / f"{name}.pid")
        lines.append(f"{name:<11}{'running (pid ' + str(pid) + ')' if pid else 'stopped':<22}{url}")
    lines.append(f"{'postgresql':<11}{pg_cluster()[3]:<22}{HOST}:{config.pg_port}")
    return lines

"""The team stack on one machine, bound to 127.0.0.1: PostgreSQL, SeaweedFS (S3) and an MLflow server
with basic auth, PostgreSQL as its store and S3 proxied artifacts; SeaweedFS also holds the DVC remote.

    python -m digitflow.stack up            # start what is not running; print the URLs and what to export
    eval "$(python -m digitflow.stack env)" # log the pipeline to the server, as the stack's admin
    python -m digitflow.stack dvc-remote    # add the stack's S3 as this clone's default DVC remote `team`
    python -m digitflow.stack add-user NAME [--password P] [--permission EDIT]
    python -m digitflow.stack status
    python -m digitflow.stack down [--purge]  # stop by PID (and every worker); --purge also deletes the data

Data survives ``down``/``up``: the state folder (``.stack/``, git-ignored) keeps the settings, secrets
and S3 data, and PostgreSQL keeps the databases. A real deployment uses the same layout with a managed
PostgreSQL and S3 (README, "Team setup").
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from digitflow import stack_services as svc
from digitflow.errors import DigitflowError
from digitflow.stack_servers import executable, start_mlflow, start_seaweedfs
from digitflow.stack_services import (
    ARTIFACTS_BUCKET,
    DVC_BUCKET,
    DVC_REMOTE,
    DVC_URL,
    HOST,
    StackConfig,
    StackError,
)

DEFAULT_STATE = Path(".stack")
# Registered models the training stages create (model-registry issue); add-user grants on them if present.
REGISTERED_MODELS = ("digitflow-sklearn", "digitflow-torch")


def up(state: Path, name: str, workers: int) -> StackConfig:
    """Start every service that is not running; on failure stop what this call started."""
    config = svc.load_or_create_config(state, name)
    if svc.ensure_postgres(config):
        (state / "postgres.started").touch()
    svc.ensure_databases(config)
    try:
        start_seaweedfs(config, state)
        start_mlflow(config, state, workers)
    except BaseException:
        down(state, purge=False)
        raise
    return config


def down(state: Path, purge: bool) -> list[str]:
    """Stop the MLflow server and SeaweedFS by PID, with their workers; PostgreSQL only if `up` started it."""
    stopped = [name for name in ("mlflow", "seaweedfs") if svc.stop_process(state / f"{name}.pid")]
    if not (state / svc.CONFIG_NAME).exists():
        return stopped
    config = existing_config(state)
    started_pg = (state / "postgres.started").exists()
    if purge:
        started_pg = svc.ensure_postgres(config) or started_pg  # to drop the databases, then stopped again
        svc.drop_databases(config)
        shutil.rmtree(state)
    else:
        (state / "postgres.started").unlink(missing_ok=True)
    if started_pg:
        svc.stop_postgres(config)
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
        f"MLflow     {config.mlflow_url} (admin {config.admin_username!r}, password in {state / svc.CONFIG_NAME})\n"
        f"S3         {config.s3_url}   (buckets {ARTIFACTS_BUCKET}, {DVC_BUCKET})\n"
        f"PostgreSQL {HOST}:{config.pg_port}   (databases {config.mlflow_db}, {config.auth_db})\n\n"
        '# Log the pipeline to the server (or: eval "$(python -m digitflow.stack env)"):\n'
        + "\n".join(env_lines(config))
        + "\n\n# Make the stack this clone's default DVC remote (or: python -m digitflow.stack dvc-remote):\n"
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
            for model in REGISTERED_MODELS
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


def _experiment_default() -> str:
    from digitflow.params import load_params

    try:
        return load_params().tracking.experiment
    except DigitflowError:
        return "digitflow"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digitflow.stack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("DIGITFLOW_STACK_DIR", DEFAULT_STATE)),
        help="settings, secrets, S3 data, PIDs and logs (default .stack, or $DIGITFLOW_STACK_DIR)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the stack")
    start.add_argument(
        "--name",
        default=os.environ.get("DIGITFLOW_STACK_NAME", "digitflow"),
        help="PostgreSQL role and database prefix (first `up` only; default digitflow, or $DIGITFLOW_STACK_NAME)",
    )
    start.add_argument("--workers", type=int, default=2, help="MLflow server worker processes")
    stop = commands.add_parser("down", help="stop the stack")
    stop.add_argument("--purge", action="store_true", help="also drop its databases and delete the state folder")
    commands.add_parser("status", help="what is running, and where")
    commands.add_parser("env", help="shell exports that send the pipeline's runs to the server")
    commands.add_parser(
        "dvc-remote", help=f"add the stack as this clone's default DVC remote {DVC_REMOTE!r} (.dvc/config.local)"
    )
    user = commands.add_parser("add-user", help="create an MLflow account and grant it a permission")
    user.add_argument("username")
    user.add_argument(
        "--password", help="at least 12 characters; a new user without one gets a generated one (printed)"
    )
    user.add_argument("--permission", default="EDIT", choices=["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"])
    user.add_argument("--experiment", default=None, help="default: params.yaml tracking.experiment")
    return parser.parse_args(argv)


def existing_config(state: Path) -> StackConfig:
    if not (state / svc.CONFIG_NAME).exists():
        raise StackError(f"no stack is set up in {state}; start one with `python -m digitflow.stack up`")
    return svc.load_or_create_config(state, "")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    state = args.state_dir.resolve()
    if args.command == "up":
        print(summary(up(state, args.name, args.workers), state))
    elif args.command == "down":
        stopped = down(state, args.purge)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}" + ("; data deleted" if args.purge else ""))
    elif args.command == "env":
        print("\n".join(env_lines(existing_config(state))))
    elif args.command == "dvc-remote":
        require_dvc_plugin(DVC_URL)
        for command in dvc_remote_commands(existing_config(state)):
            if subprocess.run([executable("dvc"), *command[1:]], check=False).returncode != 0:
                # Not the whole command: it may hold the secret key.
                raise StackError(f"`{' '.join(command[:5])} ...` failed (DVC's message is above)")
        print(f"DVC remote {DVC_REMOTE!r} ({DVC_URL}) is this clone's default, at the stack (in .dvc/config.local)")
    elif args.command == "add-user":
        experiment = args.experiment or _experiment_default()
        config = existing_config(state)
        experiment_id, password = add_user(config, args.username, args.password, args.permission, experiment)
        print(f"user {args.username!r}: {args.permission} on experiment {experiment!r} ({experiment_id})")
        if password and not args.password:
            print(f"password: {password}")
    else:
        config = existing_config(state)
        for name, url in (("mlflow", config.mlflow_url), ("seaweedfs", config.s3_url)):
            pid = svc.read_pid(state / f"{name}.pid")
            print(f"{name:<11}{'running (pid ' + str(pid) + ')' if pid else 'stopped':<22}{url}")
        print(f"{'postgresql':<11}{svc.pg_cluster()[3]:<22}{HOST}:{config.pg_port}")


if __name__ == "__main__":
    try:
        main()
    except DigitflowError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None

"""Accounts on the team stack: an MLflow login with a permission, and a DVC key, per person or machine.

Least privilege by default: ``add-user`` grants READ on the experiment and on the registered models, and a
read-only DVC key. Logging runs needs ``--permission EDIT``; pushing to the DVC remote ``--dvc write``.
Registering a model version and moving ``@champion`` need ``--promote``: MLflow 3.17 decides both by EDIT
on the registered model (``SetRegisteredModelAlias`` asks for the same ``can_update`` as
``CreateModelVersion``), so they cannot be granted apart, and ``--promote`` is meant for the few accounts
that release models (a release manager, the main branch's CI), not for every teammate who trains.

The password and keys are never printed and never pass through a command line: a generated password,
or one read from standard input, goes with the DVC key into ``users/<name>.env`` and ``users/<name>.aws``
(0600, in the 0700 state folder), for the admin to hand over.
"""

from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from digitflow.core.io import write_private
from digitflow.core.names import REGISTERED_MODELS
from digitflow.team.config import (
    StackConfig,
    StackError,
    check_password,
    new_dvc_key,
    private_folder,
    save_config,
    user_files,
    write_dvc_credentials,
)
from digitflow.team.servers import reload_s3_identities

PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
DVC_CHOICES = ("read", "write", "none")


@dataclass(frozen=True)
class Grant:
    """What ``add_user`` did: the experiment, the rights granted, and where the credentials are."""

    username: str
    experiment: str
    experiment_id: str
    permission: str
    registry: str
    dvc: str
    password_set: bool
    env_file: Path
    dvc_file: Path | None

    def describe(self) -> str:
        password = "a new password" if self.password_set else "the password unchanged"
        files = ", ".join(str(path) for path in (self.env_file, self.dvc_file) if path)
        return (
            f"user {self.username!r}: {self.permission} on experiment {self.experiment!r} ({self.experiment_id}), "
            f"{self.registry} on the registered models, DVC remote: {self.dvc}; {password}\n"
            f"credentials in {files} (mode 0600): hand them to {self.username} privately"
        )


def env_exports(url: str, username: str, password: str) -> str:
    """The shell exports that make the pipeline log to ``url`` as ``username``."""
    values = {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items())


def _grant(auth: object, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(username, resource_type, resource_id, permission)  # type: ignore[attr-defined]
    except MlflowException as exc:  # an earlier grant: replace it
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(username, resource_type, resource_id)  # type: ignore[attr-defined]
        auth.grant_user_permission(username, resource_type, resource_id, permission)  # type: ignore[attr-defined]


def add_user(
    config: StackConfig,
    state: Path,
    username: str,
    password: str | None = None,
    permission: str = "READ",
    experiment: str = "digitflow",
    promote: bool = False,
    dvc: str = "read",
) -> Grant:
    """Create an account (as the admin; a generated password unless one is given) or update an existing one
    (its password only if one is given), grant ``permission`` on the experiment (created if missing), EDIT on
    the registered models with ``promote`` and READ without, and issue, change or revoke its DVC key."""
    if password is not None:
        check_password(password, "the password")
    if username == config.admin_username:
        raise StackError(f"{username!r} is the stack's admin; choose another name")
    import warnings

    import mlflow
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # the auth client imports the server's app, which Starlette warns about
        warnings.simplefilter("ignore", DeprecationWarning)
        from mlflow.server.auth.client import AuthServiceClient

    env_file, _aws = user_files(state, username)
    os.environ["MLFLOW_TRACKING_USERNAME"] = config.admin_username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = config.admin_password
    auth = AuthServiceClient(config.mlflow_url)
    new_password = password
    try:
        try:
            new_password = password or secrets.token_urlsafe(18)
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
        _grant(auth, username, "experiment", experiment_id, permission)
        registry = "EDIT" if promote else "READ"
        for model in REGISTERED_MODELS.values():
            _grant(auth, username, "registered_model", model, registry)
    except MlflowException as exc:
        raise StackError(f"the MLflow server at {config.mlflow_url} refused: {exc.message}") from None
    if new_password:
        private_folder(env_file.parent)
        write_private(env_file, env_exports(config.mlflow_url, username, new_password))
    dvc_file = _set_dvc_key(config, state, username, dvc)
    return Grant(username, experiment, experiment_id, permission, registry, dvc, bool(new_password), env_file, dvc_file)


def _set_dvc_key(config: StackConfig, state: Path, username: str, access: str) -> Path | None:
    """Issue (or keep, with the access asked for) the account's DVC key, or revoke it (``none``)."""
    _env, aws = user_files(state, username)
    current = config.dvc_keys.get(username)
    if access == "none":
        if current is None:
            return None
        del config.dvc_keys[username]
        save_config(state, config)
        reload_s3_identities(config, state)
        aws.unlink(missing_ok=True)
        return None
    key = {**current, "access": access} if current else new_dvc_key(access)
    config.dvc_keys[username] = key
    save_config(state, config)
    reload_s3_identities(config, state, new_key=key)
    return write_dvc_credentials(state, username, key)


def read_env_file(state: Path, username: str) -> str:
    """The exports ``add-user`` wrote for ``username``; an error naming the command that writes them."""
    env_file, _aws = user_files(state, username)
    if not env_file.exists():
        raise StackError(f"no credentials for {username!r} in {env_file.parent}; `digitflow stack add-user {username}`")
    return env_file.read_text()

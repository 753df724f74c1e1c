"""``digitflow stack``: the team stack on one machine, bound to 127.0.0.1 (PostgreSQL, SeaweedFS as S3, an
MLflow server with accounts), and the commands that connect this clone to it.

    digitflow stack up            # start what is not running; print the URLs and what to export
    eval "$(digitflow stack env)" # log the pipeline to the server, as the stack's admin
    digitflow stack dvc-remote    # point this clone's `team` DVC remote at the stack
    digitflow stack add-user NAME [--password P] [--permission EDIT]
    digitflow stack status
    digitflow stack down [--purge]  # stop by PID (and every worker); --purge also deletes the data
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from typing import Any

from digitflow.core.errors import DigitflowError


def _state(args: argparse.Namespace) -> Path:
    return args.state_dir.resolve()


def _experiment_default() -> str:
    from digitflow.core.params import load_params

    try:
        return load_params().tracking.experiment
    except DigitflowError:
        return "digitflow"


def _up(args: argparse.Namespace) -> None:
    from digitflow.team.stack import summary, up

    print(summary(up(_state(args), args.name, args.workers), _state(args)))


def _down(args: argparse.Namespace) -> None:
    from digitflow.team.stack import down

    stopped = down(_state(args), args.purge)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}" + ("; data deleted" if args.purge else ""))


def _status(args: argparse.Namespace) -> None:
    from digitflow.team.stack import status_lines

    print("\n".join(status_lines(_state(args))))


def _env(args: argparse.Namespace) -> None:
    from digitflow.team.config import load_config
    from digitflow.team.stack import env_lines

    print("\n".join(env_lines(load_config(_state(args)))))


def _dvc_remote(args: argparse.Namespace) -> None:
    from digitflow.team.config import DVC_REMOTE, DVC_URL, StackError, load_config
    from digitflow.team.servers import executable
    from digitflow.team.stack import dvc_remote_commands, require_dvc_plugin

    require_dvc_plugin(DVC_URL)
    for command in dvc_remote_commands(load_config(_state(args))):
        if subprocess.run([executable("dvc"), *command[1:]], check=False).returncode != 0:
            # Not the whole command: it may hold the secret key.
            raise StackError(f"`{' '.join(command[:5])} ...` failed (DVC's message is above)")
    print(f"DVC remote {DVC_REMOTE!r} ({DVC_URL}) is this clone's default, at the stack (in .dvc/config.local)")


def _add_user(args: argparse.Namespace) -> None:
    from digitflow.team.config import load_config
    from digitflow.team.stack import add_user

    experiment = args.experiment or _experiment_default()
    config = load_config(_state(args))
    experiment_id, password = add_user(config, args.username, args.password, args.permission, experiment)
    print(f"user {args.username!r}: {args.permission} on experiment {experiment!r} ({experiment_id})")
    if password and not args.password:
        print(f"password: {password}")


def register(commands: Any) -> None:
    stack = commands.add_parser("stack", help="the team stack: MLflow server, PostgreSQL, S3 (up, down, ...)",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    stack.add_argument(
        "--state-dir",
        dest="state_dir",
        type=Path,
        default=Path(os.environ.get("DIGITFLOW_STACK_DIR", ".stack")),
        help="settings, secrets, S3 data, PIDs and logs (default .stack, or $DIGITFLOW_STACK_DIR)",
    )
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("up", help="start the stack")
    start.add_argument(
        "--name",
        default=os.environ.get("DIGITFLOW_STACK_NAME", "digitflow"),
        help="PostgreSQL role and database prefix (first `up` only; default digitflow, or $DIGITFLOW_STACK_NAME)",
    )
    start.add_argument("--workers", type=int, default=2, help="MLflow server worker processes")
    start.set_defaults(handler=_up)
    stop = actions.add_parser("down", help="stop the stack")
    stop.add_argument("--purge", action="store_true", help="also drop its databases and delete the state folder")
    stop.set_defaults(handler=_down)
    actions.add_parser("status", help="what is running, and where").set_defaults(handler=_status)
    actions.add_parser("env", help="shell exports that send the pipeline's runs to the server").set_defaults(
        handler=_env
    )
    remote = actions.add_parser(
        "dvc-remote", help="add the stack as this clone's default DVC remote `team` (.dvc/config.local)"
    )
    remote.set_defaults(handler=_dvc_remote)
    user = actions.add_parser("add-user", help="create an MLflow account and grant it a permission")
    user.add_argument("username")
    user.add_argument(
        "--password", help="at least 12 characters; a new user without one gets a generated one (printed)"
    )
    user.add_argument("--permission", default="EDIT", choices=["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"])
    user.add_argument("--experiment", default=None, help="default: params.yaml tracking.experiment")
    user.set_defaults(handler=_add_user)

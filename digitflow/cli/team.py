"""``digitflow stack``: the team stack on one machine, bound to 127.0.0.1 (PostgreSQL, SeaweedFS as S3, an
MLflow server with accounts), and the commands that connect this clone to it.

    digitflow stack up            # start what is not running; print the URLs and where the secrets are
    eval "$(digitflow stack env)" # log the pipeline to the server, as the stack's admin (--user NAME: as NAME)
    digitflow stack dvc-remote    # point this clone's `team` DVC remote at the stack (--user NAME: NAME's key)
    digitflow stack add-user NAME [--permission EDIT] [--dvc write] [--promote] [--password-stdin]
    digitflow stack status
    digitflow stack down [--purge]  # stop by PID (and every worker); --purge also deletes the data

No secret is printed or passed on a command line: they are in the state folder (0700), in files only
their owner reads (0600), and reach other programs through pipes and files.
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
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
    from digitflow.team.stack import env_text

    print(env_text(load_config(_state(args)), _state(args), args.user), end="")


def _dvc_remote(args: argparse.Namespace) -> None:
    from digitflow.team.config import DVC_REMOTE, DVC_URL, StackError, load_config
    from digitflow.team.servers import executable
    from digitflow.team.stack import dvc_remote_commands, require_dvc_plugin

    require_dvc_plugin(DVC_URL)
    for command in dvc_remote_commands(load_config(_state(args)), _state(args), args.user):
        if subprocess.run([executable("dvc"), *command[1:]], check=False).returncode != 0:
            raise StackError(f"`{' '.join(command)}` failed (DVC's message is above)")
    print(
        f"DVC remote {DVC_REMOTE!r} ({DVC_URL}) is this clone's default, at the stack, with {args.user!r}'s key "
        "(in .dvc/config.local)"
    )


def read_password(stream: object = None) -> str:
    """A password from standard input: typed at a prompt (not echoed) in a terminal, else its first line,
    so scripts pipe it in (`printf '%s\\n' "$PASSWORD" | ...`) and it never shows in `ps`."""
    stream = sys.stdin if stream is None else stream
    if getattr(stream, "isatty", lambda: False)():
        return getpass.getpass("password (at least 12 characters): ")
    return stream.readline().rstrip("\r\n")


def _add_user(args: argparse.Namespace) -> None:
    from digitflow.team.accounts import add_user
    from digitflow.team.config import load_config

    password = read_password() if args.password_stdin else None
    grant = add_user(
        load_config(_state(args)),
        _state(args),
        args.username,
        password,
        permission=args.permission,
        experiment=args.experiment or _experiment_default(),
        promote=args.promote,
        dvc=args.dvc,
    )
    print(grant.describe())


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
    env = actions.add_parser("env", help="shell exports that send the pipeline's runs to the server")
    env.add_argument("--user", help="as this account (its file from add-user) instead of the admin")
    env.set_defaults(handler=_env)
    remote = actions.add_parser(
        "dvc-remote", help="add the stack as this clone's default DVC remote `team` (.dvc/config.local)"
    )
    remote.add_argument("--user", default="admin", help="whose DVC key (default: the admin's, issued by `up`)")
    remote.set_defaults(handler=_dvc_remote)
    user = actions.add_parser(
        "add-user", help="create or update an account: an MLflow login and a DVC key, least privilege by default"
    )
    user.add_argument("username")
    user.add_argument(
        "--password-stdin", action="store_true",
        help="read the password (at least 12 characters) from standard input; otherwise a new user gets a "
        "generated one, written with the keys to the state folder's users/NAME.env",
    )  # fmt: skip
    user.add_argument(
        "--permission", default="READ", choices=["READ", "USE", "EDIT", "MANAGE"],
        help="on the experiment (default READ; EDIT to log runs)",
    )  # fmt: skip
    user.add_argument(
        "--promote", action="store_true",
        help="EDIT on the registered models: register versions and move @champion (the two go together in MLflow)",
    )  # fmt: skip
    user.add_argument(
        "--dvc", default="read", choices=["read", "write", "none"],
        help="the account's own key to the DVC remote (default read; write to push; none revokes it)",
    )  # fmt: skip
    user.add_argument("--experiment", default=None, help="default: params.yaml tracking.experiment")
    user.set_defaults(handler=_add_user)

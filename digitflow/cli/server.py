"""``digitflow server status|start|stop``: the warm stage server that runs the pipeline's stages
without paying the libraries' imports each time (``digitflow/core/warm``; docs/warm_server.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def _status(_args: argparse.Namespace) -> None:
    from digitflow.core.warm.control import status_report

    print(status_report(os.environ))


def _start(_args: argparse.Namespace) -> None:
    from digitflow.core.warm.control import start

    print(start(os.environ))


def _stop(_args: argparse.Namespace) -> None:
    from digitflow.core.warm.control import stop

    print(stop(os.environ))


def register(commands: Any) -> None:
    server = commands.add_parser(
        "server", help="the warm stage server (status, start, stop)", description=__doc__.split("\n\n")[0]
    )
    actions = server.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="the running servers: pid, age, stages served").set_defaults(handler=_status)
    actions.add_parser("start", help="start this environment's server now and wait until it is ready").set_defaults(
        handler=_start
    )
    actions.add_parser("stop", help="stop every server of this user (running stages finish)").set_defaults(
        handler=_stop
    )

"""``digitflow <command>``: every command a user runs besides ``dvc`` itself, with ``--help`` each.

    digitflow promote | serve | predict        use the trained models (registry, REST, image files)
    digitflow example-images                   the example folder of labelled pictures (data.dataset: folder)
    digitflow ui                               MLflow's UI on the comparison of the models
    digitflow pr-report                        the pull-request comment and regression gate
    digitflow offline-plots                    a `dvc plots show` template that works offline
    digitflow sweep                            an Optuna study whose trials are DVC experiments
    digitflow stack up|down|status|env|dvc-remote|add-user    the team stack on one machine
    digitflow server status|start|stop         the warm stage server (docs/warm_server.md)

The top layer: it parses arguments and calls the library; each command imports what it needs only when
it runs, so ``digitflow --help`` and a mistyped argument answer at once. Commands run in the same shell
as the stages (``core.shell``): a problem the user can fix is one line, ``[digitflow CMD] error: ...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from digitflow.cli import data, models, reports, server, sweep, team
from digitflow.core.shell import run_stage

COMMAND_GROUPS = (models, data, reports, sweep, team, server)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitflow",
        description="Every command of digitflow besides dvc itself; `digitflow COMMAND --help` for each.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_stage(f"digitflow {args.command}", lambda: args.handler(args))

"""Comparing and reviewing: ``digitflow ui`` (MLflow's UI on the models' comparison), ``digitflow pr-report``
(the pull-request comment and gate) and ``digitflow offline-plots`` (a ``dvc plots show`` template that
needs no network)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from digitflow.core import paths

log = logging.getLogger(__name__)


def _pr_report(args: argparse.Namespace) -> None:
    """Written even when the gate fails, so CI can post the explanation; the exit status is 1 then."""
    from digitflow.reporting.pr.build import build_pr_report
    from digitflow.reporting.pr.errors import GateFailedError
    from digitflow.reporting.pr.gate import gate_failure_message

    report = build_pr_report(args.base, args.output)
    log.info("wrote %s and %d images", args.output, len(report.images))
    if not report.passed:
        raise GateFailedError(gate_failure_message(report.checks))
    log.info("the regression gate passed (%d checks)", len(report.checks))


def _offline_plots(args: argparse.Namespace) -> None:
    from digitflow.reporting.offline_plots import write_offline_template

    print(write_offline_template(args.output))


def _ui(args: argparse.Namespace) -> None:
    from digitflow.tracking.ui import open_ui

    open_ui(args.study, args.port, args.browser)


def register(commands: Any) -> None:
    ui = commands.add_parser("ui", help="open mlflow ui on the comparison of the models (runs and charts)")
    ui.add_argument("--port", type=int, help="port of the local mlflow ui (default: 5000, or a free one)")
    ui.add_argument("--no-browser", dest="browser", action="store_false", help="print the addresses only")
    ui.add_argument("--study", help="a sweep's trials (digitflow sweep --study NAME) instead")
    ui.set_defaults(handler=_ui)

    pr = commands.add_parser(
        "pr-report",
        help="compare the workspace with a base revision: one Markdown comment, and the regression gate",
        description="Compare the workspace (after `dvc repro`) with a base revision's committed metrics; "
        "write one Markdown comment with its images; exit 1 when the regression gate fails.",
    )
    pr.add_argument(
        "--base", default="main",
        help="git revision to compare with: a branch (also tried as origin/<base>, fetched if missing), tag or commit",
    )  # fmt: skip
    pr.add_argument(
        "--output", type=Path, default=paths.PR_COMMENT_FILE,
        help=f"Markdown file to write; images go beside it (default: {paths.PR_COMMENT_FILE})",
    )  # fmt: skip
    pr.set_defaults(handler=_pr_report)

    plots = commands.add_parser(
        "offline-plots", help="build a `dvc plots show --html-template` page with Vega inlined (needs npm once)"
    )
    plots.add_argument("--output", type=Path, default=paths.OFFLINE_PLOTS_TEMPLATE, help="default %(default)s")
    plots.set_defaults(handler=_offline_plots)

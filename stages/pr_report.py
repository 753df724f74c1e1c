"""Pull-request report: compare the workspace with a base revision, write one Markdown comment, apply the gate.

Not a DVC stage: it reads what the pipeline produced (run ``dvc repro`` first) and the base revision's
committed metrics. The comment and its images are written even when the gate fails, so CI can post the
explanation; the exit status is 1 in that case.

    python -m stages.pr_report --base main [--output reports/pr/comment.md]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from digitflow.core.shell import run_stage
from digitflow.reporting.pr.comment import DEFAULT_OUTPUT, GateFailedError, build_pr_report, gate_failure_message

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.pr_report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base",
        default="main",
        help="git revision to compare with: a branch (also tried as origin/<base>, fetched if missing), tag or commit",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"Markdown file to write; images go beside it (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print the traceback behind an error (or set DIGITFLOW_DEBUG=1)"
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    report = build_pr_report(args.base, args.output)
    log.info("wrote %s and %d images", args.output, len(report.images))
    if not report.passed:
        raise GateFailedError(gate_failure_message(report.checks))
    log.info("the regression gate passed (%d checks)", len(report.checks))


if __name__ == "__main__":
    arguments = parse_args()
    run_stage("pr_report", lambda: main(arguments))

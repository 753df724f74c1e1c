"""What can stop the pull-request report, each with a message that says how to fix it."""

from __future__ import annotations

from digitflow.core.errors import DigitflowError


class PrReportError(DigitflowError):
    """The pull-request report could not be built."""


class BaseRevisionError(PrReportError):
    """The base revision is not in this clone and could not be fetched."""


class DvcCommandError(PrReportError):
    """A DVC command the report relies on failed."""


class GateFailedError(PrReportError):
    """A watched metric got worse by more than the gate allows, or is missing on one side."""

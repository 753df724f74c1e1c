"""How a number looks in the comment: 4 decimals, a sign for a change, ``missing`` for no value."""

from __future__ import annotations

from typing import Any

MISSING = "missing"


def fmt(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def signed(value: float) -> str:
    return f"{value:+d}" if isinstance(value, int) else f"{value:+.4f}"

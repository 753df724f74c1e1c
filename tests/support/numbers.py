"""Result files made on another machine, compared as their reader would: numbers equal within 1e-6.

On one machine the same params give the same bytes. Across x86-64 machines (with AVX-512 or only AVX2)
a float's last bit can differ, and a value written with 6 decimals can then cross a rounding boundary:
`val_loss` 0.121782 on one machine, 0.121783 on another. So files made elsewhere (the committed
``metrics/``) are compared number by number, equal within ``TOLERANCE``, and everything else (keys,
header, labels, row count, order) exactly. Numbers are read as the decimals written, not as binary
floats, in which 0.121783 - 0.121782 is 1.000000000001e-06 and would fail a 1e-6 check.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation
from typing import Any

TOLERANCE = Decimal("0.000001")  # the last of the 6 decimals the metric files are written with


def _number(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def _parsed(text: str, name: str) -> Any:
    """JSON as nested values, CSV as a header and rows, anything else as one string; numbers as Decimal."""
    if name.endswith(".json"):
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    if name.endswith(".csv"):
        header, *rows = csv.reader(io.StringIO(text))
        lines = {f"line {n}": [_number(cell) for cell in row] for n, row in enumerate(rows, 2)}
        named = {line: dict(zip(header, cells, strict=True)) if len(cells) == len(header) else cells
                 for line, cells in lines.items()}  # fmt: skip
        return {"header": header, **named}
    return text


def _compare(ours: Any, theirs: Any, where: str, found: list[str]) -> None:
    if isinstance(ours, Decimal) and isinstance(theirs, Decimal) and ours.is_finite() and theirs.is_finite():
        if abs(ours - theirs) > TOLERANCE:
            found.append(f"{where}: {ours} != {theirs} (differ by {abs(ours - theirs)}, more than {TOLERANCE})")
    elif isinstance(ours, dict) and isinstance(theirs, dict) and list(ours) == list(theirs):
        for key in ours:
            _compare(ours[key], theirs[key], f"{where}, {key}" if where else str(key), found)
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            _compare(mine, other, f"{where}[{index}]", found)
    elif type(ours) is not type(theirs) or str(ours) != str(theirs):  # str: NaN is not == NaN
        found.append(f"{where}: {ours!r} != {theirs!r}")


def differences(ours: str, theirs: str, name: str) -> list[str]:
    """Where two versions of the result file ``name`` (.json, .csv; other files exactly) differ beyond
    ``TOLERANCE``, one line each; empty when they agree."""
    found: list[str] = []
    _compare(_parsed(ours, name), _parsed(theirs, name), name, found)
    return found

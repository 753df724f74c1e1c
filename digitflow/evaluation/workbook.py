"""Excel output that reads well and is reproducible: number formats, column widths, fixed timestamps.

pandas writes the values; openpyxl (pandas' engine) gives each column a number format and a width.
An ``.xlsx`` file is a zip archive whose entries carry the time they were written, and whose document
properties carry a creation time, so the same evaluation would give different bytes on every run and
DVC would record a new hash for ``reports/evaluation`` each time. ``reproducible_zip`` rewrites both to
fixed values, so the same results give the same file.
"""

from __future__ import annotations

import datetime
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from digitflow.core.io import ZIP_TIME
from digitflow.evaluation.evaluate import ModelEvaluation, confusion_frame, metrics_by_model

FIXED_TIME = datetime.datetime(2000, 1, 1)
DECIMAL = "0.0000"
INTEGER = "0"
MAX_WIDTH = 40
CORE_PROPERTIES = "docProps/core.xml"


def write_frame(
    writer: pd.ExcelWriter,
    frame: pd.DataFrame,
    sheet: str,
    startrow: int = 0,
    index_label: str | None = None,
    formats: Mapping[str, str] | None = None,
) -> None:
    """Write ``frame`` (index first) at ``startrow`` of ``sheet``; each column gets a number format from
    ``formats`` (by column name) or, failing that, from its dtype: four decimals for floats, none for
    integers."""
    frame.to_excel(writer, sheet_name=sheet, startrow=startrow, index_label=index_label)
    worksheet: Worksheet = writer.sheets[sheet]
    formats = formats or {}
    offset = frame.index.nlevels + 1  # openpyxl columns are 1-based; the index comes first
    for position, (name, column) in enumerate(frame.items()):
        number_format = formats.get(str(name))
        if number_format is None:
            kind = column.dtype.kind
            number_format = DECIMAL if kind == "f" else INTEGER if kind in "iu" else None
        if number_format is None:
            continue
        for row in range(startrow + 2, startrow + 2 + len(frame)):
            worksheet.cell(row=row, column=offset + position).number_format = number_format


def fit_columns(worksheet: Worksheet) -> None:
    """Set each column's width to its longest shown value (numbers as formatted), within MAX_WIDTH."""
    widths: dict[int, int] = {}
    for row in worksheet.iter_rows():
        for cell in row:
            if cell.value is None:
                continue
            if isinstance(cell.value, float) and cell.number_format == DECIMAL:
                text = f"{cell.value:.4f}"
            else:
                text = str(cell.value)
            widths[cell.column] = max(widths.get(cell.column, 0), len(text))
    for column, width in widths.items():
        worksheet.column_dimensions[get_column_letter(column)].width = min(width + 2, MAX_WIDTH)


def finish(writer: pd.ExcelWriter) -> None:
    """Fit every sheet's columns and fix the creation time; call before the writer closes."""
    for worksheet in writer.book.worksheets:
        fit_columns(worksheet)
    writer.book.properties.created = FIXED_TIME


def reproducible_zip(path: Path) -> None:
    """Rewrite the workbook at ``path`` with every zip entry's time set to ZIP_TIME and the document's
    modification time (which openpyxl sets to "now" on every save, whatever it was) to FIXED_TIME."""
    path = Path(path)
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    modified = f'<dcterms:modified xsi:type="dcterms:W3CDTF">{FIXED_TIME.isoformat()}Z</dcterms:modified>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename == CORE_PROPERTIES:
                data = re.sub(rb"<dcterms:modified[^>]*>[^<]*</dcterms:modified>", modified.encode(), data)
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)


def predictions_sheet(evaluation: ModelEvaluation) -> pd.DataFrame:
    """One row per test image: its index in the test set, actual and predicted class, and the
    probability the model gave its prediction."""
    table = evaluation.predictions
    probability = table.filter(like="prob_").to_numpy().max(axis=1)
    return table[["actual", "predicted"]].assign(probability=probability)


def write_workbook(path: Path, evaluations: list[ModelEvaluation]) -> None:
    """A comparison sheet; a sheet per model with its metrics, per-class report and confusion matrix;
    then a sheet per model with its per-image predictions. Same results, same bytes."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        write_frame(writer, metrics_by_model(evaluations), "comparison", index_label="metric")
        for evaluation in evaluations:
            sheet = evaluation.model
            metrics = pd.Series(evaluation.metrics, name="value").to_frame()
            write_frame(writer, metrics, sheet, index_label="metric")
            start = len(metrics) + 2
            write_frame(writer, evaluation.per_class, sheet, startrow=start, formats={"support": INTEGER})
            start += len(evaluation.per_class) + 2
            matrix = confusion_frame(evaluation)
            matrix.index.name = "actual \\ predicted"
            write_frame(writer, matrix, sheet, startrow=start)
        for evaluation in evaluations:
            write_frame(writer, predictions_sheet(evaluation), f"{evaluation.model} predictions", index_label="index")
        finish(writer)
    reproducible_zip(path)

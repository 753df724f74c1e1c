"""digitflow.evaluation.workbook: the Excel workbook's sheets, number formats and column widths, and the
same bytes for the same results."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from digitflow.evaluation.evaluate import metrics_by_model
from digitflow.evaluation.workbook import (
    CORE_PROPERTIES,
    DECIMAL,
    INTEGER,
    MAX_WIDTH,
    ZIP_TIME,
    finish,
    fit_columns,
    reproducible_zip,
    write_frame,
    write_workbook,
)


def test_write_workbook(tmp_path: Path, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    sheets = pd.read_excel(path, sheet_name=None)
    assert list(sheets) == ["comparison", "sklearn", "torch", "sklearn predictions", "torch predictions"]

    comparison = pd.read_excel(path, sheet_name="comparison", index_col="metric")
    pd.testing.assert_frame_equal(comparison, metrics_by_model(evaluations), check_names=False)

    for evaluation in evaluations:
        n_metrics = len(evaluation.metrics)
        metrics = pd.read_excel(path, sheet_name=evaluation.model, index_col="metric", nrows=n_metrics)
        assert metrics["value"].to_dict() == pytest.approx(evaluation.metrics)
        per_class = pd.read_excel(
            path, sheet_name=evaluation.model, skiprows=n_metrics + 2, nrows=len(evaluation.per_class), index_col=0
        )
        assert list(per_class.index) == list(evaluation.per_class.index)
        np.testing.assert_allclose(per_class["recall"], evaluation.per_class["recall"])
        matrix_start = n_metrics + 2 + len(evaluation.per_class) + 2
        matrix = pd.read_excel(path, sheet_name=evaluation.model, skiprows=matrix_start, nrows=10, index_col=0)
        assert matrix.index.name == "actual \\ predicted"
        np.testing.assert_array_equal(matrix.to_numpy(), evaluation.confusion)


def test_workbook_has_per_image_predictions(tmp_path: Path, labels, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    for evaluation in evaluations:
        sheet = pd.read_excel(path, sheet_name=f"{evaluation.model} predictions")
        assert list(sheet.columns) == ["index", "actual", "predicted", "probability"]
        assert len(sheet) == len(labels)
        np.testing.assert_array_equal(sheet["actual"], labels)
        np.testing.assert_array_equal(sheet["predicted"], evaluation.predictions["predicted"])
        proba = evaluation.predictions.filter(like="prob_").to_numpy()
        np.testing.assert_allclose(sheet["probability"], proba[np.arange(len(labels)), sheet["predicted"]])
    # the sklearn model gets every fifth image wrong
    sheet = pd.read_excel(path, sheet_name="sklearn predictions")
    assert (sheet["actual"] != sheet["predicted"]).sum() == len(labels) // 5


def test_workbook_formats_and_widths(tmp_path: Path, evaluations):
    path = tmp_path / "evaluation.xlsx"
    write_workbook(path, evaluations)
    book = openpyxl.load_workbook(path)
    predictions = book["torch predictions"]
    assert [c.value for c in predictions[1]] == ["index", "actual", "predicted", "probability"]
    assert predictions["D2"].number_format == "0.0000"
    assert predictions["B2"].number_format == "0"
    assert 8 <= predictions.column_dimensions["D"].width <= 40  # "probability" plus a margin
    metrics = book["sklearn"]
    assert metrics["A1"].value == "metric"
    assert metrics["B2"].number_format == "0.0000"
    # the widest metric name, test_precision_macro, fits its column
    assert metrics.column_dimensions["A"].width >= len("test_precision_macro")


def test_workbook_bytes_depend_only_on_the_results(tmp_path: Path, evaluations):
    """Zip entry times have a two-second resolution: write, wait past it, write again."""
    first, second = tmp_path / "first.xlsx", tmp_path / "second.xlsx"
    write_workbook(first, evaluations)
    time.sleep(2.1)
    write_workbook(second, evaluations)
    assert first.read_bytes() == second.read_bytes()


# --- the parts ----------------------------------------------------------------------------------------


def test_each_column_gets_its_format_by_name_then_by_dtype(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "ratio": [0.5, 0.123456],
            "count": np.array([3, 40], dtype=np.int64),
            "name": ["a", "b"],
            "support": [10.0, 20.0],  # a float column that holds counts
        },
        index=pd.Index(["x", "y"], name="row"),
    )
    path = tmp_path / "frame.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        write_frame(writer, frame, "metrics", startrow=3, formats={"support": INTEGER})
    sheet = openpyxl.load_workbook(path)["metrics"]
    assert [cell.value for cell in sheet[4]] == ["row", "ratio", "count", "name", "support"]
    for row in (5, 6):
        formats = [cell.number_format for cell in sheet[row]]
        assert formats == ["General", DECIMAL, INTEGER, "General", INTEGER], row
    assert sheet["B6"].value == pytest.approx(0.123456)  # the value is kept whole; only its display is rounded
    assert all(cell.value is None for row in sheet.iter_rows(max_row=3) for cell in row)


def test_columns_are_as_wide_as_their_longest_shown_value() -> None:
    sheet = openpyxl.Workbook().active
    sheet.append(["metric", "value", "note", "count", "raw"])
    sheet.append(["test_precision_macro", 0.123456789, "x" * 100, 12345, 0.123456789])
    sheet["B2"].number_format = DECIMAL  # shown as 0.1235
    fit_columns(sheet)
    widths = {column: sheet.column_dimensions[column].width for column in "ABCDE"}
    assert widths == {
        "A": len("test_precision_macro") + 2,
        "B": len("0.1235") + 2,
        "C": MAX_WIDTH,
        "D": len("12345") + 2,
        "E": len("0.123456789") + 2,  # no format: Excel shows the digits
    }


def entry_times(path: Path) -> set[tuple[int, ...]]:
    with zipfile.ZipFile(path) as archive:
        return {info.date_time for info in archive.infolist()}


def core_properties(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(CORE_PROPERTIES).decode()


def retimed_copy(path: Path, target: Path, date_time: tuple[int, ...], modified: str) -> None:
    """``path`` as a later save would write it: other entry times and another modification time."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == CORE_PROPERTIES:
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + modified.encode(), data)
            retimed = zipfile.ZipInfo(info.filename, date_time=date_time)
            retimed.external_attr = info.external_attr
            copy.writestr(retimed, data)


def test_zip_times_and_document_times_are_fixed(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        write_frame(writer, pd.DataFrame({"value": [0.25]}), "metrics")
        finish(writer)
    later = tmp_path / "later.xlsx"
    retimed_copy(path, later, (2031, 5, 6, 7, 8, 10), "2031-05-06T07:08:10Z")
    assert path.read_bytes() != later.read_bytes()

    for book in (path, later):
        reproducible_zip(book)
        assert entry_times(book) == {ZIP_TIME}
        properties = core_properties(book)
        assert ">2000-01-01T00:00:00Z</dcterms:created>" in properties
        assert ">2000-01-01T00:00:00Z</dcterms:modified>" in properties
    assert path.read_bytes() == later.read_bytes()
    reproducible_zip(path)
    assert path.read_bytes() == later.read_bytes()  # idempotent
    assert openpyxl.load_workbook(path)["metrics"]["B2"].value == 0.25  # still a workbook Excel opens

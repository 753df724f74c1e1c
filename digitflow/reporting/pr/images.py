"""The comment's pictures: both sides' confusion matrices and learning curves, drawn from the committed
CSV files (the base side from git, the new side from the workspace) with the report's own figures."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from digitflow.core import paths
from digitflow.core.io import save_figure
from digitflow.core.names import MODEL_NAMES, model_title
from digitflow.evaluation.figures import confusion_heatmap, learning_curves
from digitflow.reporting.pr.errors import PrReportError
from digitflow.reporting.pr.revisions import read_at_revision, read_workspace


def confusion_counts(pairs: pd.DataFrame, labels: Sequence[Any]) -> np.ndarray:
    """Count matrix (rows actual, columns predicted) from ``actual,predicted`` rows, over fixed labels.

    The labels are shared by the base and new matrices, so the two images are comparable cell by cell
    even when one side never predicted some class.
    """
    missing = {"actual", "predicted"} - set(pairs.columns)
    if missing:
        raise PrReportError(f"confusion file is missing columns {sorted(missing)}")
    table = pd.crosstab(pairs["actual"], pairs["predicted"]).reindex(index=labels, columns=labels, fill_value=0)
    return table.to_numpy(dtype=int)


def read_csv_text(text: str | None) -> pd.DataFrame | None:
    return None if text is None else pd.read_csv(io.StringIO(text))


def render_images(base_sha: str, output_dir: Path) -> tuple[dict[str, tuple[str | None, str | None]], list[Path]]:
    """Confusion matrices and learning curves of both sides as PNGs in ``output_dir``.

    The base side is read from git (the files are committed, ``cache: false``), the new side from the
    workspace; a side without the file gets no image and the comment says so.
    """
    links: dict[str, tuple[str | None, str | None]] = {}
    written: list[Path] = []

    def save(figure: Any, name: str) -> str:
        path = output_dir / name
        save_figure(figure, path)
        written.append(path)
        return name

    for model in MODEL_NAMES:
        source = paths.confusion_csv(model)
        frames = {
            "base": read_csv_text(read_at_revision(base_sha, source)),
            "new": read_csv_text(read_workspace(source)),
        }
        present = [frame for frame in frames.values() if frame is not None]
        labels = sorted(set().union(*(set(f["actual"]) | set(f["predicted"]) for f in present))) if present else []
        side_links = []
        for side, frame in frames.items():
            if frame is None:
                side_links.append(None)
                continue
            title = f"{model_title(model)} ({side})"
            figure = confusion_heatmap(confusion_counts(frame, labels), [str(label) for label in labels], title)
            side_links.append(save(figure, f"confusion_{model}_{side}.png"))
        links[f"confusion_{model}"] = (side_links[0], side_links[1])
    history = {
        "base": read_csv_text(read_at_revision(base_sha, paths.TORCH_HISTORY_FILE)),
        "new": read_csv_text(read_workspace(paths.TORCH_HISTORY_FILE)),
    }
    curve_links = [
        None
        if frame is None
        else save(learning_curves(frame, f"PyTorch learning curves ({side})"), f"learning_curves_{side}.png")
        for side, frame in history.items()
    ]
    links["learning_curves"] = (curve_links[0], curve_links[1])
    return links, written

"""Stage report: a Markdown report with figures under reports/, built from the evaluated pipeline."""

from __future__ import annotations

import logging

import numpy as np

from digitflow.core import paths
from digitflow.core.inputs import read, read_npz
from digitflow.core.io import atomic_dir, read_json, save_figure, write_text
from digitflow.core.names import MODEL_NAMES, model_title
from digitflow.core.params import load_params
from digitflow.core.shell import run_stage
from digitflow.data.datasets import load_meta

log = logging.getLogger(__name__)
N_SAMPLES = 30
N_MISCLASSIFIED = 30


def main() -> None:
    load_params()  # validate before any work (and before the heavy imports), as every stage does
    import pandas as pd

    from digitflow.evaluation.figures import coefficient_images, image_grid, learning_curves
    from digitflow.reporting.report import (
        ReportInputs,
        build_report,
        caption,
        misclassified,
        mistake_captions,
        samples_per_class,
    )
    from digitflow.tracking.records import read_training_summary

    meta = load_meta()
    images = read(paths.FEATURES_FILE, np.load, mmap_mode="r").reshape(-1, *meta.image_shape)
    labels = read(paths.LABELS_FILE, np.load)
    split = read_npz(paths.SPLIT_INDICES_FILE)
    train_rows, n_val, test_rows = split["train"], len(split["val"]), split["test"]
    test_metrics = read(paths.EVALUATE_METRICS_FILE, read_json)
    relative = {}
    n_wrong = {}
    with atomic_dir(paths.FIGURES_DIR) as out:

        def save(key: str, figure: object, tight: bool = False) -> None:
            """Grids of pictures fit their figure exactly (no tight box needed); the learning curves do not."""
            save_figure(figure, out / f"{key}.png", tight)
            relative[key] = f"{paths.FIGURES_DIR.name}/{key}.png"

        names = meta.class_names
        samples = samples_per_class(labels, train_rows, meta.n_classes, N_SAMPLES)
        titles = [caption("label", names[labels[i]]) for i in samples]
        save("samples", image_grid(images[samples], titles, title="Training images, class by class"))
        history = read(paths.TORCH_HISTORY_FILE, pd.read_csv)
        save("learning_curves", learning_curves(history), tight=True)
        for model in MODEL_NAMES:
            relative[f"confusion_{model}"] = str(paths.confusion_png(model).relative_to(paths.REPORTS_DIR))
            predictions = read(
                paths.predictions_csv(model),
                pd.read_csv,
                index_col="test_index",
                dtype={"actual": str, "predicted": str},
            )
            n_wrong[model] = int((predictions["actual"] != predictions["predicted"]).sum())
            wrong = misclassified(predictions, N_MISCLASSIFIED)
            rows = test_rows[wrong.index.to_numpy()]
            titles = mistake_captions(wrong["predicted"], wrong["actual"])
            save(
                f"misclassified_{model}",
                image_grid(
                    images[rows],
                    titles,
                    title=f"{model_title(model)}: misclassified",
                    title_colors=["firebrick"] * len(titles),
                ),
            )
            coef = read_npz(paths.coef_file(model))["coef"]
            figure = coefficient_images(coef, meta.image_shape, model_title(model), meta.class_names)
            save(f"coefficients_{model}", figure)
    inputs = ReportInputs(
        dataset=meta.dataset,
        image_shape=meta.image_shape,
        n_train=len(train_rows),
        n_val=n_val,
        n_test=len(test_rows),
        test_metrics=test_metrics,
        train_metrics={model: read_training_summary(model) for model in MODEL_NAMES},
        figures=relative,
        n_misclassified=n_wrong,
        data_check=read(paths.DATA_CHECK_FILE, read_json),
    )
    write_text(paths.REPORT_FILE, build_report(inputs))
    log.info("wrote %s with %d figures", paths.REPORT_FILE, len(relative))


if __name__ == "__main__":
    run_stage("report", main)

"""Every path the pipeline reads or writes, defined once.

Stages, tests and ``dvc.yaml`` refer to the same locations; ``dvc.yaml`` cannot import Python, so
``tests/test_layout.py`` checks that the two agree. All paths are relative to the working directory
DVC runs a stage in (the project root, or an experiment's temporary copy of it).
"""

from __future__ import annotations

from pathlib import Path

PARAMS_FILE = Path("params.yaml")
DVC_FILE = Path("dvc.yaml")
DVC_LOCK_FILE = Path("dvc.lock")

DATA_DIR = Path("data")
# Stage code: one file per stage naming each file of the stage's code with its MD5; each stage depends
# on its own (digitflow/core/code_graph.py says why).
CODE_DIR = DATA_DIR / "code"
RAW_DIR = DATA_DIR / "raw"
RAW_DIGITS_FILE = RAW_DIR / "digits.npz"
# data.dataset = folder: the pictures converted by the folder recipe, a record per picture (path, class,
# size, mode, format, pixel hash, what the recipe found odd), and what was left out.
RAW_FOLDER_IMAGES_FILE = RAW_DIR / "folder.npz"
RAW_FOLDER_RECORDS_FILE = RAW_DIR / "files.csv"
RAW_FOLDER_META_FILE = RAW_DIR / "folder.json"
PROCESSED_DIR = DATA_DIR / "processed"
FEATURES_FILE = PROCESSED_DIR / "features.npy"
LABELS_FILE = PROCESSED_DIR / "labels.npy"
PROCESSED_META_FILE = PROCESSED_DIR / "meta.json"
SPLIT_DIR = DATA_DIR / "split"
SPLIT_INDICES_FILE = SPLIT_DIR / "indices.npz"

MODELS_DIR = Path("models")
SKLEARN_MODEL_DIR = MODELS_DIR / "sklearn"
SKLEARN_MODEL_FILE = SKLEARN_MODEL_DIR / "model.npz"
SKLEARN_COEF_FILE = SKLEARN_MODEL_DIR / "coefficients.npz"
TORCH_MODEL_DIR = MODELS_DIR / "torch"
TORCH_MODEL_FILE = TORCH_MODEL_DIR / "model.pt"
TORCH_COEF_FILE = TORCH_MODEL_DIR / "coefficients.npz"
# What a model needs to turn an image file into its input: dataset, image shape and pixel range.
MODEL_CARD_NAME = "model_card.json"

METRICS_DIR = Path("metrics")
TRAIN_SKLEARN_METRICS_FILE = METRICS_DIR / "train_sklearn.json"
TRAIN_TORCH_METRICS_FILE = METRICS_DIR / "train_torch.json"
TORCH_HISTORY_FILE = METRICS_DIR / "train_torch_history.csv"
# Each training stage's record: the MLflow run and registered version its model came from, training
# time and iterations (see digitflow/tracking/records.py). A DVC-cached output of the stage, so it comes back
# with the model when DVC restores the stage from its run-cache; out of git (it changes on every run)
# and out of models/, whose bytes depend on params and data alone.
RUNS_DIR = METRICS_DIR / "runs"
EVALUATE_METRICS_FILE = METRICS_DIR / "evaluate.json"
CONFUSION_DIR = METRICS_DIR / "confusion"

REPORTS_DIR = Path("reports")
# What the data checks found (duplicates, leakage, class counts, ...): stage check, shown by the report,
# logged to MLflow by both trainers.
DATA_CHECK_FILE = REPORTS_DIR / "data_check.json"
EVALUATION_DIR = REPORTS_DIR / "evaluation"
EVALUATION_LOG_FILE = EVALUATION_DIR / "evaluation.log"
EVALUATION_WORKBOOK_FILE = EVALUATION_DIR / "evaluation.xlsx"
REPORT_FILE = REPORTS_DIR / "report.md"
FIGURES_DIR = REPORTS_DIR / "figures"
# The search space of `digitflow sweep`, at the repository root; not a pipeline input.
SWEEP_FILE = Path("sweep.yaml")
# `digitflow pr-report`: not a pipeline output (it compares the pipeline's outputs with a base revision).
PR_COMMENT_FILE = REPORTS_DIR / "pr" / "comment.md"

# `dvc plots show --html-template` page with Vega inlined (digitflow/reporting/offline_plots.py); in DVC's own
# ignored temporary folder, as it is generated.
OFFLINE_PLOTS_TEMPLATE = Path(".dvc") / "tmp" / "plots-offline.html"


def code_fingerprint_file(stage: str) -> Path:
    return CODE_DIR / f"{stage}.json"


def model_dir(model: str) -> Path:
    """Folder holding one trained model and the record of the MLflow run that made it."""
    return {"sklearn": SKLEARN_MODEL_DIR, "torch": TORCH_MODEL_DIR}[model]


def training_record_file(model: str) -> Path:
    return RUNS_DIR / f"{model}.json"


def model_card_file(model: str) -> Path:
    return model_dir(model) / MODEL_CARD_NAME


def model_file(model: str) -> Path:
    return {"sklearn": SKLEARN_MODEL_FILE, "torch": TORCH_MODEL_FILE}[model]


def coef_file(model: str) -> Path:
    return {"sklearn": SKLEARN_COEF_FILE, "torch": TORCH_COEF_FILE}[model]


def train_metrics_file(model: str) -> Path:
    """Train and validation metrics of one model, with the id of the MLflow run that trained it."""
    return {"sklearn": TRAIN_SKLEARN_METRICS_FILE, "torch": TRAIN_TORCH_METRICS_FILE}[model]


def confusion_csv(model: str) -> Path:
    """Per-image ``actual,predicted`` rows, the shape DVC's ``confusion`` plot template reads."""
    return CONFUSION_DIR / f"{model}.csv"


def predictions_csv(model: str) -> Path:
    return EVALUATION_DIR / f"predictions_{model}.csv"


def confusion_png(model: str) -> Path:
    return EVALUATION_DIR / f"confusion_{model}.png"


def confusion_json(model: str) -> Path:
    return EVALUATION_DIR / f"confusion_{model}.json"

"""Typed, validated pipeline parameters.

``params.yaml`` is the single place for settings. Every stage validates the whole file before doing any
work, so a typo or an out-of-range value stops the pipeline at its first stage with one message that
names each offending key and what is allowed, and no output is written.

Settings that suit one dataset and not the other (digits has 1,244 training images, MNIST 54,000) live
in per-dataset blocks, ``train_torch.mnist.epochs``; ``load_params`` returns the flat settings of the
dataset ``data.dataset`` names, so ``dvc exp run -S data.dataset=mnist`` alone switches all of them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from digitflow.core.errors import ParamsError
from digitflow.core.paths import PARAMS_FILE

# torchvision's own upstream mirrors for the four MNIST files.
DEFAULT_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _yaml_float(value: Any) -> Any:
    """PyYAML reads ``1e-4`` (no dot) as a string; accept it as the number the user meant."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


# Strict types refuse `lr: true` or `epochs: "10"` instead of coercing them; floats still take ints
# and YAML's dotless exponent notation, but never `.inf` or `.nan`: no setting of this pipeline means
# anything infinite, and an infinite learning rate would train, diverge and then give impossible advice.
Float = Annotated[float, BeforeValidator(_yaml_float), Field(allow_inf_nan=False)]
# scikit-learn and NumPy take seeds up to 2**32 - 1; a larger one would pass here and crash later.
MAX_SEED = 2**32 - 1
# LogisticRegression solvers that fit any number of classes jointly (multinomial). liblinear fits one
# class against the rest only, which scikit-learn refuses for more than two classes: whether it can be
# used depends on the data, so ``check_solver`` refuses it where the classes are known (train_sklearn).
MULTICLASS_SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag", "saga")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Dataset = Literal["digits", "mnist", "folder"]
DATASETS: tuple[str, ...] = ("digits", "mnist", "folder")
# Sections whose settings may differ per dataset: under ``<section>.<dataset>``, a block of keys that
# apply only when ``data.dataset`` names that dataset (digits' 1,244 training images and MNIST's 54,000
# want different batch sizes and epochs). A key lives either in the section or in its dataset blocks,
# never both, so a ``-S train_torch.epochs=...`` can never be silently outvoted by a block.
PER_DATASET_SECTIONS = ("preprocess", "split", "train_sklearn", "train_torch")


# The sides of a folder's images after conversion: enough for a symbol or a form field, and a linear
# model's weights stay one image per class (256x256 is 65,536 weights per class).
MIN_SIDE, MAX_SIDE = 4, 256
Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]


class DataParams(_Section):
    dataset: Dataset = "digits"
    # data.dataset = folder: one subfolder of PNG / JPEG files per class, read by the fetch stage (its
    # dvc.yaml dependency is this path, through DVC's templating). Relative to the project root, or absolute.
    folder: str = Field("examples/shapes", min_length=1)
    # Height and width every image of the folder is brought to (the folder recipe, image_recipes.py).
    image_size: list[Side] = Field(default_factory=lambda: [28, 28], min_length=2, max_length=2)
    # Which side of the picture is the ink (the class's shape): dark on a light background, light on a
    # dark one, or found per picture from its border (auto).
    ink: Literal["dark", "light", "auto"] = "auto"
    # false: the whole picture, its aspect ratio kept, padded to image_size; true: the ink cropped, fitted
    # and centred by its mass, as MNIST made its digits (suits handwriting, not photos of parts).
    centre_ink: bool = False
    # Files that are not readable PNG / JPEG images: listed and refused (false), or listed and left out.
    skip_unreadable: bool = False


class FetchParams(_Section):
    # Base URLs (http, https or file) or local folders holding the four original .gz files.
    mirrors: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: list(DEFAULT_MNIST_MIRRORS), min_length=1
    )
    # Seconds to wait for a mirror to connect or send the next bytes before trying the next mirror.
    timeout: Float = Field(20.0, gt=0, le=600)
    # Seconds the whole download (four files, every mirror tried) may take before the stage gives up.
    deadline: Float = Field(600.0, gt=0, le=86400)


# Fitted on the training rows by each model and saved inside it (a Pipeline step, torch buffers).
Scaling = Literal["none", "minmax", "standard"]


class SplitParams(_Section):
    test_size: Float = Field(0.23, gt=0, lt=1)
    val_size: Float = Field(0.1, gt=0, lt=1)
    seed: int = Field(2, ge=0, le=MAX_SEED)
    # The classic digits notebook split is not stratified; keep it by default so its test set is ours.
    stratify_test: bool = False


class TrainSklearnParams(_Section):
    scaling: Scaling = "standard"
    C: Float = Field(1.0, gt=0)
    solver: Literal["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga", "liblinear"] = "lbfgs"
    max_iter: int = Field(1000, ge=1)
    tol: Float = Field(1e-4, gt=0)
    class_weight: Literal["balanced"] | None = None


def check_solver(solver: str, class_names: tuple[str, ...]) -> None:
    """Refuse a solver that cannot fit these classes: liblinear fits one class against the rest, which
    scikit-learn allows for two classes only. The number of classes comes from the data, so this runs
    where the data is known (train_sklearn, before any fitting), not in the schema."""
    if solver not in MULTICLASS_SOLVERS and len(class_names) > 2:
        raise ParamsError(
            f"train_sklearn.solver = {solver} cannot fit the {len(class_names)} classes of this dataset at once "
            f"(it fits one class against the rest, for two classes only); use one of {', '.join(MULTICLASS_SOLVERS)}"
        )


class TrainTorchParams(_Section):
    scaling: Scaling = "standard"
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: Float = Field(0.01, gt=0)
    # constant: ``lr`` throughout; cosine: from ``lr`` down to zero over all batches of all epochs
    # (``CosineAnnealingLR`` stepped per batch), which lets a few large-batch epochs converge.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    batch_size: int = Field(256, ge=1)
    epochs: int = Field(20, ge=1)
    weight_decay: Float = Field(0.0, ge=0)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # PyTorch intra-op threads; 1 is the fastest for this model (see digitflow/core/determinism.py).
    threads: int = Field(1, ge=1, le=1024)
    # balanced: each class's loss weighted by n_images / (n_classes * its count), as scikit-learn's
    # class_weight="balanced" (the data check suggests it when the classes are unbalanced).
    class_weight: Literal["balanced"] | None = None


class TrackingParams(_Section):
    experiment: str = Field("digitflow", min_length=1)


class GateParams(_Section):
    """Pull-request regression gate: the largest drop of each watched test metric, per model."""

    metrics: list[str] = Field(default_factory=lambda: ["test_accuracy"], min_length=1)
    max_drop_abs: Float = Field(0.01, ge=0)
    max_drop_rel: Float = Field(0.02, ge=0, le=1)


class Params(_Section):
    data: DataParams = DataParams()
    fetch: FetchParams = FetchParams()
    split: SplitParams = SplitParams()
    train_sklearn: TrainSklearnParams = TrainSklearnParams()
    train_torch: TrainTorchParams = TrainTorchParams()
    tracking: TrackingParams = TrackingParams()
    gate: GateParams = GateParams()


def _format_error(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"  {key}: unknown key; remove it or check its spelling"
    message = error["msg"].removeprefix("Value error, ")
    return f"  {key}: {message} (got {error['input']!r})"


def _for_dataset(raw: dict[str, Any], dataset: str) -> tuple[dict[str, Any], dict[tuple[str, str], str], list[str]]:
    """``raw`` with each per-dataset block merged into its section for ``dataset``.

    Returns the merged mapping, where each merged key came from (to name ``train_torch.mnist.epochs``
    rather than ``train_torch.epochs`` in errors), and the layout problems found.
    """
    merged = dict(raw)
    origin: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for section in PER_DATASET_SECTIONS:
        values = raw.get(section)
        if not isinstance(values, dict):
            continue
        shared = {key: value for key, value in values.items() if key not in DATASETS}
        block = values.get(dataset) or {}
        if not isinstance(block, dict):
            problems.append(f"  {section}.{dataset}: expected a mapping of {section} settings (got {block!r})")
            block = {}
        for key in sorted(set(shared) & set(block)):
            problems.append(
                f"  {section}.{key}: set both for every dataset and in {section}.{dataset}; keep one "
                f"(edit {section}.{dataset}.{key} to change it for {dataset} only)"
            )
        # On a clash the section's value is kept, so its own mistakes are reported too.
        origin.update({(section, key): f"{section}.{dataset}.{key}" for key in block if key not in shared})
        merged[section] = {**block, **shared}
    return merged, origin, problems


def parse_params(raw: Any, source: str = str(PARAMS_FILE)) -> Params:
    """Validate a decoded ``params.yaml`` for its ``data.dataset``; raise ``ParamsError`` listing every
    problem at once. Every dataset's block is validated, not only the chosen one's, so a mistake in the
    MNIST settings is caught on digits too."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    data = raw.get("data") or {}
    chosen = data.get("dataset", DataParams().dataset) if isinstance(data, dict) else None
    problems: list[str] = []
    result: Params | None = None
    for dataset in DATASETS:
        merged, origin, layout_problems = _for_dataset(raw, dataset)
        problems += layout_problems
        try:
            params = Params.model_validate(merged)
        except ValidationError as exc:
            for error in exc.errors():
                named = origin.get(tuple(str(part) for part in error["loc"][:2]))  # type: ignore[arg-type]
                loc = (named, *error["loc"][2:]) if named else error["loc"]
                problems.append(_format_error({**error, "loc": loc}))
            continue
        if dataset == chosen:
            result = params
    if problems or result is None:
        unique = "\n".join(dict.fromkeys(problems))
        raise ParamsError(f"{source} is invalid:\n{unique}")
    return result


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate the params file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    try:
        return parse_params(raw, str(path))
    except ParamsError as exc:
        raise ParamsError(f"{exc}{edited_hint(path)}") from None


def edited_hint(path: Path) -> str:
    """What to do about an invalid params file that is not the committed one: a failed ``dvc exp run -S``
    leaves its values in the workspace's file, where the next experiment (and the queue) starts from them."""
    from digitflow.core.git import differs_from_commit

    if not differs_from_commit(path):
        return ""
    return (
        f"\n{path} differs from the last commit (a failed `dvc exp run -S ...` leaves its values in it): "
        f"`git diff {path}` shows what changed, `git checkout {path}` puts the committed one back"
    )


def set_dotted(params: MutableMapping[str, Any], key: str, value: Any) -> None:
    """Set ``key`` as ``dvc exp run -S`` names it (``train_torch.lr``, the per-dataset
    ``train_torch.digits.epochs``) in a nested params mapping, in place, creating sections as needed."""
    *sections, name = key.split(".")
    target = params
    for section in sections:
        target = target.setdefault(section, {})
    target[name] = value

"""What a sweep searches: params.yaml keys and their ranges or choices, and the validation metric to optimise.

The search space lives in ``sweep.yaml`` (not in params.yaml, whose sections are each a stage's input:
a ``sweep`` section there would be a param no stage reads). It is validated completely before a worker
starts anything: every key must exist in params.yaml, every bound and choice must be a value
params.yaml accepts, and the metric must be a validation metric, because a hyperparameter chosen on
the test set makes the test score an optimistic, leaked estimate.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from digitflow.core.errors import DigitflowError, ParamsError
from digitflow.core.names import MODEL_NAMES, lower_is_better
from digitflow.core.params import DATASETS, PER_DATASET_SECTIONS, Params, parse_params, set_dotted

Scalar = str | int | float | bool | None
# Metrics both training stages write to metrics/train_<model>.json, and evaluate to metrics/evaluate.json.
METRIC_NAMES = ("accuracy", "log_loss", "precision_macro", "recall_macro", "f1_macro")
# A study name becomes part of DVC experiment names (git refs) and MLflow tags.
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class SweepConfigError(DigitflowError):
    """The sweep's search space, metric or settings are not usable."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """Numbers from ``low`` to ``high``: integers when both bounds are integers; ``log`` for rates and C."""

    low: int | float
    high: int | float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if isinstance(self.low, bool) or isinstance(self.high, bool):
            raise ValueError("low and high must be numbers")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


class Choices(_Strict):
    """One of a list of values (optimizer, batch size, solver, ...)."""

    choices: list[Scalar] = Field(min_length=1)


class SweepConfig(_Strict):
    study: str = "digitflow"
    metric: str = "torch.val_log_loss"
    direction: Literal["minimize", "maximize"] | None = None
    trials: int = Field(20, ge=1)
    space: dict[str, Range | Choices] = Field(min_length=1)
    # -S values every trial sets but does not search (e.g. fewer epochs for a quick sweep).
    fixed: dict[str, Scalar] = Field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """``<model>.val_<name>``: read from metrics/train_<model>.json; its test twin from metrics/evaluate.json."""

    model: str
    name: str

    @property
    def val_key(self) -> str:
        return f"val_{self.name}"

    @property
    def test_key(self) -> str:
        return f"test_{self.name}"

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if lower_is_better(self.name) else "maximize"

    def __str__(self) -> str:
        return f"{self.model}.{self.val_key}"


def parse_metric(text: str) -> Metric:
    """Accept only validation metrics; a test metric is refused with the validation metric to use instead."""
    allowed = ", ".join(f"{m}.val_{n}" for m in MODEL_NAMES for n in METRIC_NAMES)
    model, _, key = text.partition(".")
    split, _, name = key.partition("_")
    if model in MODEL_NAMES and split == "test" and name in METRIC_NAMES:
        raise SweepConfigError(
            f"metric {text!r} is a test metric: a sweep optimises a validation metric, so the test set stays "
            f"an unbiased estimate (the best trial's {text} is reported, not used). Use {model}.val_{name}."
        )
    if model not in MODEL_NAMES or split != "val" or name not in METRIC_NAMES:
        raise SweepConfigError(f"metric {text!r} is not a validation metric; use one of: {allowed}")
    return Metric(model, name)


def _check_key(key: str) -> str | None:
    section, _, field = key.partition(".")
    block, _, in_block = field.partition(".")
    if section in PER_DATASET_SECTIONS and block in DATASETS and in_block:
        field = in_block  # a per-dataset setting: train_torch.digits.epochs
    sections = Params.model_fields
    if section not in sections or section in {"tracking", "gate"}:
        searchable = ", ".join(s for s in sections if s not in {"tracking", "gate"})
        return f"  {key}: not a params.yaml key to sweep; use <section>.<key> with a section among {searchable}"
    annotation = sections[section].annotation
    fields = annotation.model_fields if isinstance(annotation, type) and issubclass(annotation, BaseModel) else {}
    if field not in fields:
        return f"  {key}: {section} has no key {field!r}; its keys are {', '.join(fields)}"
    return None


def _with(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``raw`` with the dotted ``key`` (``train_torch.lr``, ``train_torch.digits.epochs``) set."""
    changed = copy.deepcopy(raw)
    set_dotted(changed, key, value)
    return changed


def _check_values(raw: dict[str, Any], key: str, values: list[Any]) -> list[str]:
    problems = []
    for value in values:
        try:
            parse_params(_with(raw, key, value))
        except ParamsError as exc:
            detail = exc.args[0].split("\n", 1)[-1].strip()
            problems.append(f"  {key}: {value!r} is not accepted by params.yaml ({detail})")
    return problems


def validate(config: SweepConfig, params_raw: dict[str, Any]) -> Metric:
    """Check the whole config against params.yaml; raise one error listing every problem."""
    problems: list[str] = []
    if not STUDY_NAME.match(config.study):
        problems.append(f"  study: {config.study!r} must be letters, digits, '_', '.', '-' (it names DVC experiments)")
    try:
        metric = parse_metric(config.metric)
    except SweepConfigError as exc:
        problems.append(f"  {exc}")
        metric = None
    if metric and config.direction and config.direction != metric.direction:
        problems.append(f"  direction: {metric} is to be {metric.direction}d, not {config.direction}d")
    for key in [*config.space, *config.fixed]:
        if (problem := _check_key(key)) is not None:
            problems.append(problem)
    problems += [f"  {key}: both searched (space) and fixed; keep one" for key in config.space if key in config.fixed]
    if not problems:
        base = params_raw
        for key, value in config.fixed.items():
            problems += _check_values(base, key, [value])
            base = _with(base, key, value)
        for key, spec in config.space.items():
            values = spec.choices if isinstance(spec, Choices) else [spec.low, spec.high]
            problems += _check_values(base, key, values)
    if problems or metric is None:
        raise SweepConfigError("the sweep configuration is invalid:\n" + "\n".join(problems))
    return metric


def load_config(path: Path, **overrides: Any) -> SweepConfig:
    """Read ``sweep.yaml``; command-line values (not None) replace its top-level settings."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise SweepConfigError(f"{path} not found; write a search space there (see README, Sweeps)") from None
    except yaml.YAMLError as exc:
        raise SweepConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SweepConfigError(f"{path}: expected a mapping (study, metric, trials, space, fixed)")
    fixed = overrides.pop("fixed", None) or {}
    raw = {**raw, **{key: value for key, value in overrides.items() if value is not None}}
    raw["fixed"] = {**(raw.get("fixed") or {}), **fixed}
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SweepConfigError(f"{path} is invalid:\n" + "\n".join(lines)) from None


def parse_assignment(text: str) -> tuple[str, Scalar]:
    """``train_torch.lr=0.01`` -> ``("train_torch.lr", 0.01)``, the value read as YAML like ``dvc exp run -S``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SweepConfigError(f"-S {text!r}: expected <section>.<key>=<value>, e.g. train_torch.digits.epochs=5")
    return key.strip(), yaml.safe_load(value)

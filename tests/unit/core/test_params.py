"""digitflow.core.params: the real params.yaml loads; every kind of mistake is one ParamsError naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from digitflow.core.errors import DigitflowError, ParamsError
from digitflow.core.params import (
    DATASETS,
    MULTICLASS_SOLVERS,
    Params,
    check_solver,
    load_params,
    parse_params,
    set_dotted,
)
from digitflow.data.datasets import DIGIT_CLASSES
from tests.conftest import PROJECT_ROOT, run

REAL_PARAMS = PROJECT_ROOT / "params.yaml"


def real_raw() -> dict:
    return yaml.safe_load(REAL_PARAMS.read_text())


def with_value(section: str, key: str, value: object) -> dict:
    raw = real_raw()
    raw[section][key] = value
    return raw


def params_error(raw: object) -> str:
    with pytest.raises(ParamsError) as caught:
        parse_params(raw, "params.yaml")
    return str(caught.value)


def test_real_params_file_loads_with_its_values():
    params = load_params(REAL_PARAMS)
    raw = real_raw()
    assert isinstance(params, Params)
    # Every section and value in the file reaches the typed object unchanged, with the chosen
    # dataset's block merged into its section.
    for section, values in raw.items():
        values = {k: v for k, v in values.items() if k not in DATASETS} | values.get(params.data.dataset, {})
        assert getattr(params, section).model_dump() == {**getattr(params, section).model_dump(), **values}
    assert params.data.dataset == raw["data"]["dataset"]
    assert params.train_torch.lr == raw["train_torch"]["lr"]
    assert params.split.test_size == raw["split"]["test_size"]


def test_empty_mapping_gives_the_model_defaults():
    assert parse_params({}) == Params()


def test_params_are_frozen():
    params = parse_params({})
    with pytest.raises(ValueError, match="frozen"):
        params.train_torch.lr = 1.0  # type: ignore[misc]


def test_params_error_is_a_digitflow_error():
    # Stages print DigitflowError messages without a traceback; ParamsError must be one of them.
    assert issubclass(ParamsError, DigitflowError)


def test_unknown_key_is_named():
    message = params_error(with_value("train_torch", "learning_rate", 0.1))
    assert "train_torch.learning_rate" in message
    assert "unknown key" in message


def test_unknown_section_is_named():
    raw = real_raw()
    raw["trainer"] = {"lr": 0.1}
    message = params_error(raw)
    assert "trainer: unknown key" in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train_torch", "epochs", "many"),
        ("train_torch", "lr", "fast"),
        ("train_torch", "batch_size", [32]),
        ("split", "seed", 2.5),
        ("fetch", "mirrors", "http://example.invalid/"),
    ],
)
def test_wrong_type_is_named(section, key, value):
    message = params_error(with_value(section, key, value))
    assert f"{section}.{key}" in message
    assert repr(value) in message  # the offending value is shown


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("train_torch.lr", True, "number"),
        ("train_torch.digits.epochs", "10", "integer"),  # epochs is set per dataset
        ("split.digits.stratify_test", "yes", "boolean"),
    ],
)
def test_boolean_or_string_for_a_number_is_refused(key, value, expected):
    raw = real_raw()
    set_dotted(raw, key, value)
    # One problem, on the key's own line, with the value that was given.
    assert params_error(raw).splitlines()[1:] == [f"  {key}: Input should be a valid {expected} (got {value!r})"]


def test_negative_lr_names_key_and_bound():
    message = params_error(with_value("train_torch", "lr", -0.1))
    assert "train_torch.lr" in message
    assert "greater than 0" in message
    assert "-0.1" in message


@pytest.mark.parametrize(("value", "bound"), [(0, "greater than 0"), (1.5, "less than 1"), (1, "less than 1")])
def test_test_size_outside_open_unit_interval(value, bound):
    message = params_error(with_value("split", "test_size", value))
    assert "split.test_size" in message
    assert bound in message


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("data", "dataset", "emnist", ["'digits'", "'mnist'", "'folder'"]),
        ("data", "ink", "black", ["'dark'", "'light'", "'auto'"]),
        ("train_sklearn", "solver", "adam", ["'lbfgs'", "'saga'", "'liblinear'"]),
        ("train_sklearn", "scaling", "robust", ["'none'", "'minmax'", "'standard'"]),
        ("train_torch", "optimizer", "rmsprop", ["'sgd'", "'adam'"]),
        ("train_torch", "lr_schedule", "linear", ["'constant'", "'cosine'"]),
    ],
)
def test_unknown_choice_lists_what_is_allowed(section, key, value, allowed):
    message = params_error(with_value(section, key, value))
    line = next(line for line in message.splitlines() if f"{section}.{key}" in line)
    assert repr(value) in line
    for choice in allowed:
        assert choice in line


def test_every_problem_is_reported_at_once():
    raw = real_raw()
    raw["train_torch"]["lr"] = -1
    raw["split"]["test_size"] = 1.5
    raw["data"]["dataset"] = "emnist"
    raw["train_sklearn"]["typo"] = 1
    message = params_error(raw)
    problems = [line for line in message.splitlines() if line.startswith("  ")]
    assert len(problems) == 4
    for key in ("train_torch.lr", "split.test_size", "data.dataset", "train_sklearn.typo"):
        assert sum(key in line for line in problems) == 1


@pytest.mark.parametrize("raw", [[1, 2], "text", None, 3])
def test_top_level_must_be_a_mapping(raw):
    message = params_error(raw)
    assert "expected a mapping" in message
    assert type(raw).__name__ in message


def test_invalid_yaml(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train_torch:\n  lr: [0.1\n")
    with pytest.raises(ParamsError, match="not valid YAML") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_empty_file_is_not_a_mapping(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(path)


def test_missing_file(tmp_path: Path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ParamsError, match="not found") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_message_names_the_file(tmp_path: Path):
    path = tmp_path / "custom.yaml"
    path.write_text("train_torch:\n  lr: -3\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert str(path) in str(caught.value)
    assert "train_torch.lr" in str(caught.value)


def test_stage_refuses_bad_params_without_traceback_or_output(project_copy: Path):
    params_file = project_copy / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())
    raw["train_torch"]["lr"] = -0.5
    raw["train_torch"]["scalling"] = "standard"
    params_file.write_text(yaml.safe_dump(raw))
    before = sorted(p.relative_to(project_copy) for p in (project_copy / "data").rglob("*"))

    result = run(project_copy, "python", "-m", "stages.fetch", check=False)

    assert result.returncode != 0
    assert "train_torch.lr" in result.stderr
    assert "train_torch.scalling" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (project_copy / "data" / "raw").exists()
    after = sorted(p.relative_to(project_copy) for p in (project_copy / "data").rglob("*"))
    assert after == before  # not even a temporary staging folder is left


# --- values the schema used to accept and a stage then crashed on (issue 10) -----------------------


def test_liblinear_is_refused_for_more_than_two_classes_naming_the_solvers_that_can():
    """liblinear fits one class against the rest: two classes only. The schema cannot know the number of
    classes (it comes from the data), so params accept it and ``check_solver`` refuses it in train_sklearn."""
    params = parse_params(with_value("train_sklearn", "solver", "liblinear"))
    check_solver(params.train_sklearn.solver, ("cat", "dog"))
    with pytest.raises(ParamsError) as caught:
        check_solver(params.train_sklearn.solver, DIGIT_CLASSES)
    message = str(caught.value)
    assert message.startswith("train_sklearn.solver = liblinear cannot fit the 10 classes")
    assert "lbfgs, newton-cg, newton-cholesky, sag, saga" in message
    for solver in MULTICLASS_SOLVERS:
        check_solver(solver, DIGIT_CLASSES)


def test_liblinear_fits_two_classes():
    from sklearn.datasets import load_digits

    from digitflow.models.sklearn_model import build_model

    features, labels = load_digits(return_X_y=True)
    two = labels < 2
    params = parse_params(with_value("train_sklearn", "solver", "liblinear")).train_sklearn
    model = build_model(params).fit(features[two], labels[two])
    assert model.predict_proba(features[two][:5]).shape == (5, 2)
    assert model.score(features[two], labels[two]) > 0.95


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"])
def test_every_accepted_solver_fits_the_ten_digit_classes(solver):
    from sklearn.datasets import load_digits

    from digitflow.models.sklearn_model import build_model

    features, labels = load_digits(return_X_y=True)
    params = parse_params(with_value("train_sklearn", "solver", solver)).train_sklearn
    model = build_model(params).set_params(logreg__max_iter=3).fit(features[:200], labels[:200])
    assert model.predict_proba(features[:5]).shape == (5, 10)


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "inf", "nan", "1e999"])
@pytest.mark.parametrize(
    ("section", "key"),
    [("train_torch", "lr"), ("train_torch", "weight_decay"), ("train_sklearn", "C"), ("gate", "max_drop_abs")],
)
def test_infinite_or_nan_floats_are_refused(section, key, text):
    raw = real_raw()
    raw[section][key] = yaml.safe_load(f"v: {text}")["v"]
    message = params_error(raw)
    assert f"{section}.{key}" in message
    assert "finite number" in message or "greater than" in message


@pytest.mark.parametrize(("section", "key"), [("split", "seed"), ("train_torch", "seed")])
def test_seed_beyond_what_numpy_and_sklearn_take_is_refused(section, key):
    assert getattr(parse_params(with_value(section, key, 2**32 - 1)), section).seed == 2**32 - 1
    message = params_error(with_value(section, key, 2**32))
    assert f"{section}.{key}" in message
    assert "4294967295" in message


@pytest.mark.parametrize(
    ("section", "key", "value"), [("train_torch", "threads", 0), ("fetch", "timeout", 0), ("fetch", "deadline", 0)]
)
def test_threads_and_timeout_must_be_positive(section, key, value):
    assert f"{section}.{key}" in params_error(with_value(section, key, value))


def test_switching_the_dataset_switches_its_block():
    raw = real_raw()
    digits = parse_params(raw).train_torch
    mnist = parse_params({**raw, "data": {"dataset": "mnist"}}).train_torch
    assert digits.model_dump() == {**digits.model_dump(), **raw["train_torch"]["digits"]}
    assert mnist.model_dump() == {**mnist.model_dump(), **raw["train_torch"]["mnist"]}
    assert (digits.batch_size, mnist.batch_size) == (32, 1024)
    assert digits.lr == mnist.lr == raw["train_torch"]["lr"]
    assert digits.lr_schedule == mnist.lr_schedule == "cosine"


def test_a_key_in_the_section_and_in_a_block_is_refused():
    # `dvc exp run -S train_torch.epochs=5` must not be silently outvoted by train_torch.digits.epochs.
    message = params_error(with_value("train_torch", "epochs", 5))
    assert "train_torch.epochs: set both for every dataset and in train_torch.digits" in message
    assert "train_torch.digits.epochs" in message


def test_a_mistake_in_the_other_datasets_block_is_named_with_its_block():
    raw = real_raw()
    raw["train_torch"]["mnist"]["batch_size"] = 0
    raw["train_sklearn"]["mnist"] = {"tol": "tiny"}
    message = params_error(raw)
    assert raw["data"]["dataset"] == "digits"
    assert "train_torch.mnist.batch_size: Input should be greater than or equal to 1 (got 0)" in message
    assert "train_sklearn.mnist.tol" in message


def test_a_block_must_be_a_mapping():
    raw = real_raw()
    raw["train_torch"]["mnist"] = 5
    assert "train_torch.mnist: expected a mapping of train_torch settings" in params_error(raw)


# --- a folder of your own images (issue 25) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([28], "at least 2 items"),
        ([28, 28, 3], "at most 2 items"),
        ([2, 28], "greater than or equal to 4"),
        ([28, 1000], "less than or equal to 256"),
        ("28x28", "valid list"),
        ([28.5, 28], "valid integer"),
    ],
)
def test_image_size_is_a_height_and_a_width_within_bounds(value, expected):
    message = params_error(with_value("data", "image_size", value))
    assert "data.image_size" in message
    assert expected in message


def test_folder_settings_reach_the_params():
    raw = real_raw()
    raw["data"] = {"dataset": "folder", "folder": "data/images", "image_size": [32, 24], "ink": "light",
                   "centre_ink": True, "skip_unreadable": True}  # fmt: skip
    params = parse_params(raw)
    assert params.data.model_dump() == raw["data"]
    # The folder's own per-dataset blocks apply: a stratified test set, its own training length.
    assert params.split.stratify_test is True
    assert params.train_torch.epochs == raw["train_torch"]["folder"]["epochs"]
    assert parse_params(real_raw()).split.stratify_test is False  # digits keeps the classic split


@pytest.mark.parametrize(("key", "value"), [("folder", ""), ("centre_ink", "yes"), ("skip_unreadable", 1)])
def test_folder_settings_are_checked_like_every_other(key, value):
    assert f"data.{key}" in params_error(with_value("data", key, value))


def test_an_invalid_file_that_is_not_the_committed_one_says_how_to_undo_the_edit(tmp_path: Path):
    """A failed `dvc exp run -S` leaves its value in params.yaml, where the next experiment starts from it:
    the message says so, with the commands, only when the file differs from the commit."""
    from digitflow.core.git import git

    path = tmp_path / "params.yaml"
    path.write_text("train_torch:\n  lr: -3\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert "differs from the last commit" not in str(caught.value)  # not in a repository
    git("init", "-q", cwd=tmp_path)
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "start", cwd=tmp_path)
    git("add", "params.yaml", cwd=tmp_path)
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "params", cwd=tmp_path)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    assert "differs from the last commit" not in str(caught.value)  # the committed file is invalid itself
    path.write_text("train_torch:\n  lr: -4\n")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "train_torch.lr" in message
    assert message.endswith(
        f"{path} differs from the last commit (a failed `dvc exp run -S ...` leaves its values in it): "
        f"`git diff {path}` shows what changed, `git checkout {path}` puts the committed one back"
    )

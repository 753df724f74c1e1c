"""dvc.yaml and digitflow/core/paths.py describe the same files, and every stage command has its module."""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from digitflow.core import names, paths
from digitflow.core.params import Params
from tests.conftest import PROJECT_ROOT

DVC = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]
PER_MODEL = (
    paths.model_dir,
    paths.model_card_file,
    paths.training_record_file,
    paths.coef_file,
    paths.confusion_csv,
    paths.predictions_csv,
    paths.confusion_png,
    paths.confusion_json,
)


def entry_path(entry: str | dict) -> str:
    """A dvc.yaml list entry is either 'path' or {'path': {options}}."""
    return entry if isinstance(entry, str) else next(iter(entry))


def defined_paths() -> set[str]:
    constants = {value.as_posix() for value in vars(paths).values() if isinstance(value, Path)}
    per_model = {function(model).as_posix() for function in PER_MODEL for model in names.MODEL_NAMES}
    return constants | per_model


def stage_outputs() -> dict[str, str]:
    """Every out, metric and plot output of every stage -> the stage."""
    return {
        entry_path(entry): name
        for name, stage in STAGES.items()
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", [])
    }


def plot_paths() -> set[str]:
    found = set()
    for plot in DVC.get("plots", []):
        plot_id, config = next(iter(plot.items()))
        y = (config or {}).get("y")
        found |= set(y) if isinstance(y, dict) else {plot_id}
    return found


def resolved(dep: str) -> str:
    """A dep as DVC reads it: ``${data.folder}`` (DVC's templating) is that key's value in params.yaml."""
    match = re.fullmatch(r"\$\{([\w.]+)\}", dep)
    if match is None:
        return dep
    value = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for key in match[1].split("."):
        value = value[key]
    return value


def inside(path: str, folder: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(folder) or PurePosixPath(folder) in PurePosixPath(path).parents


@pytest.mark.parametrize("path", sorted(stage_outputs()))
def test_every_dvc_output_is_defined_in_paths(path):
    assert path in defined_paths(), f"{path} is in dvc.yaml but not in digitflow/core/paths.py"


@pytest.mark.parametrize("path", sorted(plot_paths()))
def test_every_plot_file_is_a_defined_output(path):
    assert path in defined_paths()
    assert any(inside(path, out) for out in stage_outputs()), f"plot {path} is not written by any stage"


def test_every_output_path_in_paths_is_tracked_by_dvc():
    # Top-level folders and files the pipeline reads but does not write are not outputs.
    not_outputs = {
        paths.DATA_DIR,
        paths.MODELS_DIR,
        paths.METRICS_DIR,
        paths.CONFUSION_DIR,
        paths.REPORTS_DIR,
        paths.RUNS_DIR,  # one output file per training stage inside
        paths.PARAMS_FILE,
        paths.DVC_FILE,
        paths.DVC_LOCK_FILE,
        paths.SWEEP_FILE,
        paths.PR_COMMENT_FILE,  # written by `digitflow pr-report`, not by a stage
        paths.OFFLINE_PLOTS_TEMPLATE,  # made on request by `digitflow offline-plots`, not by a stage
    }
    written = defined_paths() - {p.as_posix() for p in not_outputs}
    untracked = [p for p in sorted(written) if not any(inside(p, out) for out in stage_outputs())]
    assert untracked == [], "written by a stage but in no dvc.yaml out"


def test_outputs_do_not_overlap():
    outs = sorted(stage_outputs())
    overlapping = [(a, b) for a in outs for b in outs if a != b and inside(a, b)]
    assert overlapping == []


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_exist_or_come_from_an_earlier_stage(name):
    order = list(STAGES)
    for dep in map(resolved, STAGES[name].get("deps", [])):
        producer = next((stage for out, stage in stage_outputs().items() if inside(dep, out)), None)
        if producer is None:
            assert (PROJECT_ROOT / dep).exists(), f"{name} depends on {dep}, which neither exists nor is produced"
        else:
            assert order.index(producer) < order.index(name), f"{dep} is produced by {producer}, after {name}"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_command_module_exists_and_has_main(name):
    match = re.fullmatch(r"python -m stages\.(\w+)", STAGES[name]["cmd"])
    assert match, f"unexpected command {STAGES[name]['cmd']!r}"
    source_file = PROJECT_ROOT / "stages" / f"{match[1]}.py"
    assert source_file.is_file()
    tree = ast.parse(source_file.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "main" in functions
    # Executed as a module, it runs main through the shared shell that turns errors into clean messages.
    guards = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert guards, "no `if __name__ == '__main__':` block"
    calls = [ast.unparse(call) for call in ast.walk(guards[0]) if isinstance(call, ast.Call)]
    assert any(re.fullmatch(r"run_stage\('\w+', main\)", call) for call in calls), calls
    # A change to the stage's own code re-runs it (through its code file: tests/project/test_dvc_deps.py).
    code_dep = "stages" if name == "code" else paths.code_fingerprint_file(name).as_posix()
    assert code_dep in STAGES[name]["deps"]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_exist(name):
    fields = Params.model_fields
    order = list(STAGES)
    for param in STAGES[name].get("params", []):
        if isinstance(param, dict) and next(iter(param.values())) is None:
            # `- params.yaml:` tracks every param of that file (the validate stage).
            assert entry_path(param) == paths.PARAMS_FILE.as_posix()
            continue
        if isinstance(param, dict):  # another params file: an output of an earlier stage
            path = entry_path(param)
            producer = next((stage for out, stage in stage_outputs().items() if inside(path, out)), None)
            assert path in defined_paths(), f"{name}: params file {path} is not in digitflow/core/paths.py"
            assert producer is not None, f"{name}: params file {path} is written by no stage"
            assert order.index(producer) < order.index(name)
            continue
        section, _, key = entry_path(param).partition(".")
        assert section in fields, f"{name}: params section {section!r} is not in Params"
        if key:
            assert key in fields[section].annotation.model_fields, f"{name}: {param} is not a parameter"


def test_ci_grows_the_readme_installs_step_by_step_and_the_committed_dvc_config_has_no_secret() -> None:
    """.ci/run installs exactly README command 1 (plus pytest) first, then the sweep extra, then runs README
    command 2, deselecting only the tests the first two steps ran in the same venv."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in setup.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2, "the set-up block holds the run command and the test command"
    plain_install = commands[0].removesuffix(" && dvc repro")
    assert plain_install.endswith("pip install -e .")
    ci = (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()
    (full,) = [line for line in ci if line.startswith(commands[1])]
    assert full.removeprefix(commands[1]) == ' -m "not first_hour and not sweep"'
    steps = [f"{plain_install} pytest", "pytest -m first_hour", 'pip install -e ".[sweep]"', "pytest -m sweep", full]
    assert [ci.index(step) for step in steps] == sorted(ci.index(step) for step in steps)
    dvc_config = (PROJECT_ROOT / ".dvc" / "config").read_text()
    assert not re.search(r"access_key|secret|password|endpointurl", dvc_config)

"""What each install brings: a plain install (README command 1) reaches every DVC remote the committed
config names, the team's remote is added only where its plugin is installed, and the team commands and
the pipeline import nothing that only the sweep extra brings."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pytest
from configobj import ConfigObj
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from digitflow.team.config import CONFIG_NAME, DVC_REMOTE, DVC_URL, StackConfig, write_private
from digitflow.team.stack import dvc_plugin
from tests.conftest import PROJECT_ROOT, pipeline_env, run
from tests.support.imports import direct_imports, external_packages


def core_distributions() -> set[str]:
    """What `pip install -e .` installs: digitflow's requirements without an extra, and theirs in turn."""
    found: set[str] = set()
    todo = ["digitflow"]
    while todo:
        try:
            requirements = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:  # required only on another platform
            continue
        for requirement in map(Requirement, requirements):
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            if (name := canonicalize_name(requirement.name)) not in found:
                found.add(name)
                todo.append(name)
    return found


def remotes(config_file: Path) -> dict[str, str]:
    """Remote name -> URL, from a DVC config file."""
    config = ConfigObj(str(config_file))
    return {section.split('"')[1]: config[section]["url"] for section in config if section.startswith("remote ")}


def test_the_committed_dvc_config_names_no_remote_a_plain_install_cannot_reach() -> None:
    """DVC builds the default remote's filesystem in `dvc exp run`, `dvc plots show`, `dvc data status` ...:
    a remote whose plugin (dvc-s3, dvc-gs, dvc-azure ...) is not a core dependency breaks them all."""
    assert dvc_plugin("s3://bucket/path") == ("dvc_s3", "dvc-s3")  # the check below can fail
    assert dvc_plugin("/mnt/shared/dvc") is None
    core = core_distributions()
    assert {"dvc", "mlflow", "torch"} <= core
    assert "dvc-s3" not in core
    for name, url in remotes(PROJECT_ROOT / ".dvc" / "config").items():
        plugin = dvc_plugin(url)
        assert plugin is None or plugin[1] in core, (
            f"the committed .dvc/config names remote {name!r} ({url}), which needs {plugin[1]}, "
            "not a core dependency: add it per clone with `dvc remote add --local`"
        )


# `digitflow stack dvc-remote`, as `python -m digitflow` runs it, with dvc_s3 unimportable (a plain install).
WITHOUT_DVC_S3 = (
    "import runpy, sys; sys.modules['dvc_s3'] = None; sys.argv = ['digitflow', *sys.argv[1:]]; "
    "runpy.run_module('digitflow', run_name='__main__')"
)


def test_dvc_remote_without_the_s3_plugin_says_what_to_install(tmp_path: Path) -> None:
    """Before any work: no remote is added, so DVC's own error cannot surface later in every `dvc exp run`."""
    (tmp_path / ".dvc").mkdir()
    result = run(tmp_path, sys.executable, "-c", WITHOUT_DVC_S3, "stack", "dvc-remote", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"[digitflow stack] error: the DVC remote {DVC_URL} needs DVC's dvc-s3 plugin, which is not installed here; "
        'install the team extra first: pip install -e ".[team]"'
    )
    assert list((tmp_path / ".dvc").iterdir()) == []


@pytest.mark.team
def test_dvc_remote_adds_the_default_remote_and_runs_again(tmp_path: Path) -> None:
    """`digitflow stack dvc-remote` in a fresh clone: the stack's bucket becomes the default remote
    in .dvc/config.local with its endpoint, keys and hash checks; a second run gives the same config."""
    state = tmp_path / "stack"
    config = StackConfig(ports={"s3": 18333}, s3_access_key="digitflowkey", s3_secret_key="not-a-real-secret")
    write_private(state / CONFIG_NAME, json.dumps(asdict(config)))
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / ".dvc").mkdir()
    (clone / ".dvc" / "config").write_text((PROJECT_ROOT / ".dvc" / "config").read_text())
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    command = [sys.executable, "-m", "digitflow", "stack", "--state-dir", str(state), "dvc-remote"]
    written = []
    for _ in range(2):
        result = subprocess.run(command, cwd=clone, capture_output=True, text=True, env=pipeline_env())
        assert result.returncode == 0, result.stdout + result.stderr
        written.append((clone / ".dvc" / "config.local").read_text())
    assert written[0] == written[1]
    local = ConfigObj(str(clone / ".dvc" / "config.local"))
    assert local["core"]["remote"] == DVC_REMOTE
    assert local[f'remote "{DVC_REMOTE}"'] == {
        "url": DVC_URL,
        "endpointurl": config.s3_url,
        "access_key_id": "digitflowkey",
        "secret_access_key": "not-a-real-secret",
        "verify": "true",
    }
    assert "remote" not in (clone / ".dvc" / "config").read_text()  # nothing of it in the committed config


# --- the extras' code stays apart -----------------------------------------------------------------------

SWEEP_ONLY = {"optuna", "optuna_dashboard"}  # the sweep extra's own packages (psycopg2 is the team's too)


def test_team_commands_and_stages_import_nothing_only_the_sweep_extra_brings() -> None:
    """After `pip install -e ".[team]"` alone the stack's commands and `dvc repro` / `dvc push` run: no
    module they reach imports Optuna, even inside a function."""
    assert external_packages("digitflow.cli.sweep") & SWEEP_ONLY  # the scan finds what it looks for
    stages = [f"stages.{path.stem}" for path in (PROJECT_ROOT / "stages").glob("*.py") if path.stem != "__init__"]
    # digitflow.cli.team's commands import only team modules (the cli package reaches every command
    # group, the sweep's too, so it is not scanned as a whole).
    commands = {name for name in direct_imports("digitflow.cli.team") if name.startswith("digitflow.")}
    assert all(name.startswith(("digitflow.core.", "digitflow.team.")) for name in commands), commands
    for module in [*sorted(commands), *stages]:
        assert not external_packages(module) & SWEEP_ONLY, module

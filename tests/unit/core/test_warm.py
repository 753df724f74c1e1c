"""The warm stage server's pure parts: what keys a server, where it lives, the wire, what it preloads.
(tests/e2e/test_warm_server.py runs real servers.)"""

from __future__ import annotations

import ast
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from digitflow.core.determinism import AVX2_PINS, THREAD_PINS
from digitflow.core.warm import child, client, identity, wire
from digitflow.core.warm.preload import OWN_MODULES, PRELOAD, own_module, project_module
from tests.support.imports import ROOT, closure, module_file


def key(environ: dict[str, str], path: list[str] | None = None) -> str:
    return identity.key_of(identity.identity(environ, path))


BASE = {"PATH": "/usr/bin", "HOME": "/root", "OMP_NUM_THREADS": "1", **AVX2_PINS, **THREAD_PINS}


@pytest.mark.parametrize(
    ("name", "value"),
    [("OMP_NUM_THREADS", "2"), ("MKL_CBWR", "AVX2"), ("ATEN_CPU_CAPABILITY", "default"),
     ("OPENBLAS_NUM_THREADS", "2"), ("CUDA_VISIBLE_DEVICES", "0"), ("PYTHONHASHSEED", "0"), ("MPLBACKEND", "svg"),
     ("PYTHONPATH", "/elsewhere"), ("LC_ALL", "C"), ("TORCH_LOGS", "dynamo")],
)  # fmt: skip
def test_variables_read_when_libraries_load_key_the_server(name: str, value: str) -> None:
    assert key({**BASE, name: value}) != key(BASE)


@pytest.mark.parametrize(
    "name", ["MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "AWS_SECRET_ACCESS_KEY", "PATH", "DIGITFLOW_SWEEP_TRIAL"]
)
def test_variables_read_when_used_do_not(name: str) -> None:
    assert key({**BASE, name: "something else"}) == key(BASE)


def test_every_cpu_pin_is_a_key_variable() -> None:
    assert all(identity.loads_at_import(name) for name in {**AVX2_PINS, **THREAD_PINS})


def test_installing_or_upgrading_a_package_changes_the_key(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    path = ["/the/project", str(site)]
    before = key(BASE, path)
    (site / "somelib").mkdir()  # a package's files alone: not how pip records an install
    assert key(BASE, path) == before
    dist = site / "somelib-1.0.dist-info"
    dist.mkdir()
    installed = key(BASE, path)
    assert installed != before
    os.utime(dist, ns=(1, 1))  # reinstalled or upgraded in place
    assert key(BASE, path) not in {before, installed}


def test_the_working_folder_does_not_key_the_server(tmp_path: Path) -> None:
    """path[0] is the project the stage runs in (children import it fresh): every copy shares a server."""
    site = str(tmp_path)
    assert key(BASE, ["/one/project", site]) == key(BASE, ["/another/copy", site])


def test_the_servers_code_keys_the_server(tmp_path: Path) -> None:
    for name in identity.SERVER_SOURCES:
        (tmp_path / name).write_text("x = 1\n")
    before = identity.sources_digest(tmp_path)
    (tmp_path / "child.py").write_text("x = 2\n")
    assert identity.sources_digest(tmp_path) != before


def test_on_by_default_on_linux_only_and_off_with_the_switch() -> None:
    assert identity.enabled({}, "linux")
    assert not identity.enabled({}, "darwin")
    assert not identity.enabled({"DIGITFLOW_SERVER": "1"}, "darwin")
    for off in ("0", "false", "no", "off", " OFF "):
        assert not identity.enabled({"DIGITFLOW_SERVER": off}, "linux")


def test_idle_seconds_from_the_environment() -> None:
    assert identity.idle_seconds({}) == 600
    assert identity.idle_seconds({"DIGITFLOW_SERVER_IDLE": "5"}) == 5
    assert identity.idle_seconds({"DIGITFLOW_SERVER_IDLE": "soon"}) == 600


def test_server_folder_choice(tmp_path: Path) -> None:
    assert identity.server_dir({"DIGITFLOW_SERVER_DIR": str(tmp_path)}) == tmp_path
    assert identity.server_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "digitflow"
    assert identity.server_dir({}).name == f"digitflow-{os.getuid()}"


def test_the_folder_is_private(tmp_path: Path) -> None:
    folder = identity.private_dir(tmp_path / "servers")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)  # opened by hand: closed again
    identity.private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "servers"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(identity.UnsafeFolder, match="not a folder of this user"):
        identity.private_dir(folder)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(identity.UnsafeFolder):
        identity.private_dir(tmp_path / "link")


@pytest.mark.parametrize(
    ("argv", "module"),
    [(["python", "-m", "stages.train_torch"], "stages.train_torch"),
     (["/venv/bin/python", "-m", "stages.report", "--verbose"], "stages.report"),
     (["python", "-X", "importtime", "-m", "stages.fetch"], None),  # options: this very process
     (["python", "-m", "digitflow", "sweep"], None), (["python", "stages/fetch.py"], None), (["python"], None)],
)  # fmt: skip
def test_only_plain_stage_commands_go_to_the_server(argv: list[str], module: str | None) -> None:
    assert client.stage_module(argv) == module


def test_frames_carry_messages_and_descriptors() -> None:
    left, right = socket.socketpair()
    read_end, write_end = os.pipe()
    with left, right:
        wire.send(left, {"op": "run", "env": {"A": "x" * 100_000}}, fds=[read_end, write_end, write_end])
        wire.send(left, {"signal": 15})
        reader = wire.Reader(right)
        first = reader.frame(want_fds=3)
        assert first["op"] == "run"
        assert len(first["env"]["A"]) == 100_000
        assert len(reader.fds) == 3
        os.write(reader.fds[1], b"through the passed descriptor")
        assert os.read(read_end, 100) == b"through the passed descriptor"
        assert reader.frame() == {"signal": 15}
        left.close()
        with pytest.raises(wire.WireError):
            reader.frame()
    for fd in (read_end, write_end, *reader.fds):
        os.close(fd)


def test_a_garbled_frame_is_an_error() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(wire.HEADER.pack(5) + b"nope!")
        with pytest.raises(wire.WireError, match="not JSON"):
            wire.Reader(right).frame()


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), (True, 1), ("a message", 1)])
def test_system_exit_codes_as_python_makes_them(code: object, status: int, capsys: pytest.CaptureFixture) -> None:
    assert child.exit_code(SystemExit(code)) == status
    assert capsys.readouterr().err == ("a message\n" if code == "a message" else "")


def stage_third_party_imports() -> dict[str, set[str]]:
    """Each third-party name imported (``import x.y`` / ``from x.y import z``) by a module any stage can
    import, and the stages that import it."""
    found: dict[str, set[str]] = {}
    for stage in sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__"):
        for module in closure(f"stages.{stage}"):
            path = module_file(module)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in {"digitflow", "stages", "__future__"} and top not in sys.stdlib_module_names:
                        found.setdefault(name, set()).add(stage)
    return found


def test_the_server_preloads_every_library_a_stage_imports() -> None:
    """A library missing from PRELOAD would be imported by each warm stage again, unnoticed: the time
    the server exists to save."""
    imported = stage_third_party_imports()
    assert {"torch", "mlflow", "sklearn.linear_model", "matplotlib.figure"} <= set(imported)
    # Importing a module imports its packages: `from PIL import Image` is covered by PIL.Image.
    loaded = {".".join(name.split(".")[: i + 1]) for name in PRELOAD for i in range(name.count(".") + 1)}
    missing = {name: sorted(stages) for name, stages in imported.items() if name not in loaded}
    assert missing == {}


def test_the_server_imports_nothing_of_the_project_but_its_own_modules() -> None:
    assert all(name.startswith("digitflow") for name in OWN_MODULES)
    assert own_module("digitflow.core.warm.server")
    assert own_module("digitflow.core.determinism")
    assert not own_module("digitflow.core.params")
    assert not own_module("stages")
    assert project_module("stages.fetch")
    assert project_module("digitflow")
    assert not project_module("digitflows")
    assert not [name for name in PRELOAD if project_module(name)]

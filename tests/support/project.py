"""Helpers for the tests and the benchmark: clone-like copies of the project, and a real HTTP mirror
of a local folder on 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from digitflow.core.params import set_dotted
from digitflow.core.processes import isolated_env


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # torchvision reads only the headers of its redirect probe and hangs up: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serving(handler: Any) -> Iterator[str]:
    """Answer HTTP requests with ``handler`` (a request handler class) on 127.0.0.1, a free port, each in a
    thread of its own; yield the base URL, ending in '/'."""
    with _QuietServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) and yield its base URL, ending in '/'."""
    with serving(functools.partial(_QuietHandler, directory=str(folder))) as url:
        yield url


def project_files(root: Path) -> list[str]:
    """Files git tracks or would track (untracked but not ignored) under ``root``: what a clone holds."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (root / name).is_file()]


def _dotted(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"train_torch": {"digits": {"epochs": 5}}}`` -> ``("train_torch.digits.epochs", 5)``."""
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def set_params(project: Path, **sections: dict[str, Any]) -> None:
    """Update a project's params.yaml as a user editing it would; nested mappings (the per-dataset
    blocks, ``train_torch={"mnist": {"epochs": 5}}``) set the keys they name and keep the rest."""
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    for key, value in _dotted(sections):
        set_dotted(params, key, value)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def command_env(**extra: str) -> dict[str, str]:
    """The environment for the project's commands in tests and benchmarks: this interpreter's venv
    first on PATH, nothing of the caller's MLflow store, DVC run or pytest (``isolated_env``), plus
    ``extra``."""
    env = isolated_env(**extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def make_project_copy(root: Path, destination: Path, **sections: dict[str, Any]) -> Path:
    """Copy the project at ``root`` into ``destination`` as a fresh git repository with one commit,
    with ``sections`` merged into its params.yaml first."""
    for name in project_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    if sections:
        set_params(destination, **sections)
    for command in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "tests@digitflow.local"],
        ["config", "user.name", "digitflow tests"],
        ["add", "-A"],
        ["commit", "-q", "-m", "baseline"],
    ):
        subprocess.run(["git", *command], cwd=destination, check=True, capture_output=True)
    return destination

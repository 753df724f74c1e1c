"""Where warm servers live and which one a stage may use.

A server's libraries were loaded once, in its environment; a child forked from it behaves as a cold
``python -m stages.<name>`` only if that process would have loaded the same libraries the same way. So
a server is keyed by what decides that: the interpreter, the installed packages (the ``*.dist-info``
entries of every folder on ``sys.path`` and their modification times, so a ``pip install`` or upgrade
starts a fresh server), the variables that libraries read when they load (thread counts, kernel pins,
CUDA, locale, ``PYTHON*``, ...) and the server's own code. Any other variable (``MLFLOW_TRACKING_URI``,
``DVC_*``, ``PATH``) is read when used, and the child gets the stage command's environment whole.

Servers live in one folder per user that only the user can open: ``$DIGITFLOW_SERVER_DIR``, else
``$XDG_RUNTIME_DIR/digitflow``, else ``/tmp/digitflow-<uid>``; each key has a socket, a lock held for
the server's life, an info file and a log there.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SWITCH_ENV = "DIGITFLOW_SERVER"  # 0 turns the warm server off, 1 on (the default on Linux)
DIR_ENV = "DIGITFLOW_SERVER_DIR"  # the folder of sockets, locks and logs (tests give each run its own)
IDLE_ENV = "DIGITFLOW_SERVER_IDLE"  # seconds without a stage before a server exits (default 600)
DEFAULT_IDLE_SECONDS = 600.0
PROTOCOL = 1

# Variables read when a library loads (so the server's copy must be the one a cold stage would load):
# OpenMP, MKL, OpenBLAS and the other BLAS builds, NumPy, PyTorch (ATen kernels, CUDA, its logging and
# compilers), matplotlib, scikit-learn and SciPy, Python itself (PYTHONHASHSEED, PYTHONPATH, ...), the
# dynamic linker, the allocators (the C library's, PyArrow's jemalloc) and the locale.
LOAD_TIME_PREFIXES = (
    "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "GOTO", "BLIS_", "VECLIB_", "NUMEXPR_", "NPY_", "NUMPY_",
    "ATEN_", "CUDA_", "CUBLAS_", "CUDNN_", "NCCL_", "NVIDIA_", "PYTORCH_", "TORCH", "KINETO_",
    "MPL", "SKLEARN_", "SCIPY_", "JOBLIB_", "LOKY_", "ARROW_", "JE_", "PYTHON", "LD_", "MALLOC_", "LC_",
)  # fmt: skip
LOAD_TIME_NAMES = frozenset(
    {"LANG", "LANGUAGE", "TZ", "HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"}
    # MLflow configures its loggers when imported.
    | {"MLFLOW_CONFIGURE_LOGGING", "MLFLOW_LOGGING_LEVEL"}
)
# The modules whose code runs in the server itself: a change to any starts a fresh server.
SERVER_SOURCES = ("identity.py", "wire.py", "preload.py", "server.py", "session.py", "child.py")


class UnsafeFolder(Exception):
    """The server folder exists but is not this user's private folder: no server is used."""


def enabled(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether stages use the warm server: on Linux unless ``DIGITFLOW_SERVER=0``. Elsewhere never:
    forking a process that has loaded these libraries is unsafe on macOS (its system frameworks are not
    fork-safe), and the server relies on Linux's peer credentials and process descriptors."""
    value = environ.get(SWITCH_ENV, "").strip().lower()
    return platform.startswith("linux") and value not in {"0", "false", "no", "off"}


def idle_seconds(environ: Mapping[str, str]) -> float:
    try:
        return max(1.0, float(environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS)))
    except ValueError:
        return DEFAULT_IDLE_SECONDS


def loads_at_import(name: str) -> bool:
    return name in LOAD_TIME_NAMES or name.startswith(LOAD_TIME_PREFIXES)


def load_time_variables(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in sorted(environ) if loads_at_import(name)}


def package_fingerprint(path: Sequence[str]) -> list[list[object]]:
    """Each installed distribution's metadata folder (and ``.pth`` file) on ``path``, with its mtime:
    installing, upgrading or removing a package changes it. ``path[0]``, the script's or working
    folder, is left out (it holds the project, which children import fresh anyway)."""
    found: list[list[object]] = []
    for folder in path[1:]:
        try:
            entries = sorted(os.scandir(folder or "."), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                try:
                    found.append([folder, entry.name, entry.stat().st_mtime_ns])
                except OSError:
                    continue
    return found


def sources_digest(folder: Path = Path(__file__).parent) -> str:
    digest = hashlib.sha256()
    for name in SERVER_SOURCES:
        try:
            digest.update((folder / name).read_bytes())
        except OSError:
            digest.update(b"missing " + name.encode())
    return digest.hexdigest()


def identity(environ: Mapping[str, str], path: Sequence[str] | None = None) -> dict[str, object]:
    """What a server's key is made of, readable (``digitflow server status`` shows parts of it)."""
    return {
        "protocol": PROTOCOL,
        # The interpreter itself (`python` and `python3` in a venv are one), and its venv.
        "python": [os.path.realpath(sys.executable), sys.version, sys.prefix],
        "packages": package_fingerprint(sys.path if path is None else path),
        "variables": load_time_variables(environ),
        "server": sources_digest(),
    }


def key_of(ident: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def server_dir(environ: Mapping[str, str]) -> Path:
    """The folder of this user's servers (not created here)."""
    if environ.get(DIR_ENV):
        return Path(environ[DIR_ENV])
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.stat(runtime).st_uid == os.getuid():
        return Path(runtime) / "digitflow"
    return Path(tempfile.gettempdir()) / f"digitflow-{os.getuid()}"


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (mode 0700) or check that it is this user's own and closed to everyone else:
    another user who could open it could connect to the sockets or replace them."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, 0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafeFolder(f"{folder} is not a folder of this user (uid {os.getuid()})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(folder, 0o700)  # ours: close it (a umask of 0 at creation, or a chmod by hand)
    return folder


@dataclass(frozen=True)
class ServerFiles:
    """The files of the server with one key: its socket, the lock it holds while alive, its info and log."""

    folder: Path
    key: str

    @property
    def socket(self) -> Path:
        return self.folder / f"{self.key}.sock"

    @property
    def lock(self) -> Path:
        return self.folder / f"{self.key}.lock"

    @property
    def info(self) -> Path:
        return self.folder / f"{self.key}.json"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.key}.log"

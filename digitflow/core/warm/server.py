"""The warm stage server: import the heavy libraries once, then fork a child per stage.

    python -m digitflow.core.warm.server FOLDER KEY      (started in the background by a stage command)

Start-up: set ``MLFLOW_DISABLE_TELEMETRY`` (``import mlflow`` would otherwise start a telemetry thread, and
a process with threads cannot be forked safely), apply the CPU pins of ``core.determinism`` (already in
the environment the stage command passed on), check the key it was started for, take the key's lock
(one server per key), import ``PRELOAD`` and nothing of the project, and only then bind the socket, so a
server that answers is ready.

Each request gets a *supervisor*, forked from the server, which forks the stage's child, forwards the
command's signals to it, kills it if the command dies (its connection closes), and sends back its exit
status. The server itself only accepts, checks and forks, so a stage keeps running if the server is
stopped or killed. Before each fork the server checks that it still has one thread, no CUDA context,
no project module beyond its own and no file open but its own; otherwise it refuses, and the command
runs the stage cold. It exits after ``DIGITFLOW_SERVER_IDLE`` seconds (default 600) without a stage, on
``digitflow server stop`` or SIGTERM, and when its key no longer matches (a package was installed).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from digitflow.core.warm.identity import PROTOCOL, ServerFiles, identity, idle_seconds, key_of
from digitflow.core.warm.wire import Reader, WireError, send

# What the stages import (tests/unit/core/test_warm.py checks the list covers every third-party import of
# every stage's modules), then what the libraries import only when a stage first calls them (found by
# profiling warm stages: benchmarks/run.py reports what a warm stage still imports).
PRELOAD = (
    "numpy", "yaml", "pydantic", "filelock", "tqdm.auto", "PIL.Image",
    "scipy", "pandas", "sklearn", "sklearn.datasets", "sklearn.linear_model", "sklearn.metrics",
    "sklearn.model_selection", "sklearn.pipeline", "sklearn.preprocessing",
    "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo",
    "torchvision.datasets", "torchvision.datasets.utils",
    "matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg",
    "openpyxl", "openpyxl.utils", "openpyxl.worksheet.worksheet",
    "mlflow", "mlflow.data", "mlflow.entities", "mlflow.exceptions", "mlflow.models", "mlflow.types",
    "mlflow.utils.mlflow_tags", "mlflow.sklearn", "mlflow.pytorch", "mlflow.pyfunc",
    # Called, not imported, by the stages: the MLflow store on SQLite and its schema check (SQLAlchemy,
    # Alembic), the git context of a run (GitPython), model logging (requirements, signatures, the
    # scoring server's input check; torch.export for PyTorch models), images, workbooks, CSV.
    "sqlite3", "sqlalchemy.dialects.sqlite", "alembic.command", "alembic.config", "alembic.migration",
    "alembic.script", "alembic.runtime.migration", "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store", "git",
    "mlflow.store.tracking.sqlalchemy_workspace_store", "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.tracing.export", "mlflow.tracing.processor", "mlflow.pyfunc.utils.environment", "opentelemetry.sdk.metrics",
    "mlflow.utils.requirements_utils", "mlflow.utils.environment", "mlflow.models.display_utils",
    "mlflow.pyfunc.scoring_server", "mlflow.utils.name_utils", "email.policy",
    "torch.export", "torch.export._trace", "torch._export.passes", "torch._inductor.codecache", "torch._inductor.ir",
    "torch._functorch.aot_autograd", "torch.fx.experimental.validator", "torch.utils.serialization", "networkx",
    "sympy", "sympy.combinatorics", "sympy.tensor.tensor",
    "PIL.BmpImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin", "PIL.PngImagePlugin", "PIL.PpmImagePlugin",
    "openpyxl.packaging.extended", "pandas.io.formats.csvs", "pandas.io.formats.excel", "pandas.io.formats.string",
    "pandas.core.methods.to_dict", "pyarrow.pandas_compat", "pyarrow.vendored.version", "sklearn.datasets.data",
    "sklearn.datasets.descr",
)  # fmt: skip


def warm_up(log: Log) -> None:
    """Work every stage that logs a model repeats, with the same result, on the installed packages
    alone (which the key fixes): MLflow's map from modules to their distributions, read from every
    package's metadata (2-3 s) when it checks a model's requirements."""
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()
        requirements_utils._init_packages_to_modules_map()
    except Exception as exc:
        log(f"warm-up skipped: {exc!r}")


# The project modules the server itself runs; every other digitflow or stages module is imported by
# the children, fresh.
OWN_MODULES = ("digitflow", "digitflow.core", "digitflow.core.determinism", "digitflow.core.warm")
JEMALLOC_CONF_ENV, NO_JEMALLOC_THREAD = "JE_ARROW_MALLOC_CONF", "background_thread:false"
CHECK_KEY_SECONDS = 30.0
REQUEST_SECONDS = 10.0
FORWARDED_SIGNALS = frozenset(
    {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
    | {signal.SIGSTOP, signal.SIGCONT}
)


def own_module(name: str) -> bool:
    return name in OWN_MODULES or name.startswith("digitflow.core.warm.")


def project_module(name: str) -> bool:
    return name.split(".")[0] in {"digitflow", "stages"}


class Log:
    """The server's log file (``<key>.log`` beside its socket); the server's standard streams are
    /dev/null, like a daemon's."""

    def __init__(self, path: Path, limit: int = 1 << 20) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 (open for the server's life)
        if self.file.tell() > limit:  # one file per key, kept across servers of that key: bounded
            self.file.truncate(0)

    def __call__(self, message: str) -> None:
        with contextlib.suppress(OSError):
            now = time.time()
            stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"
            self.file.write(f"{stamp} [{os.getpid()}] {message}\n")


def preload(log: Log) -> tuple[list[str], dict[str, str]]:
    """Import ``PRELOAD``; the names imported and the environment variables the imports set (PyTorch
    sets ``KMP_DUPLICATE_LIB_OK``, ``TORCHINDUCTOR_CACHE_DIR``, ...: a cold stage would have them once
    it imported the same library, so each child sets them again). A library that fails to import is
    left to the children and logged. The root logger is put back as it was: ``mlflow.pytorch`` calls
    ``logging.basicConfig`` when imported, which in a cold stage comes after the stage's own and so
    does nothing."""
    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loaded = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:
            log(f"not preloaded: {name}: {exc!r}")
    root.handlers[:] = handlers
    root.setLevel(level)
    return loaded, {name: value for name, value in os.environ.items() if environ.get(name) != value}


def peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def open_files(allowed: set[int]) -> list[str]:
    """What this process has open besides ``allowed`` descriptors: files, sockets, pipes."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in allowed:
            continue
        try:
            found.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # the descriptor of the listing itself, closed by now
    return found


class Server:
    def __init__(self, files: ServerFiles, environ: dict[str, str], ident: dict[str, Any], log: Log, lock_fd: int):
        self.files, self.key, self.environ, self.ident = files, files.key, environ, ident
        self.log, self.lock_fd = log, lock_fd
        self.idle = idle_seconds(environ)
        self.started = time.time()
        self.supervisors: dict[int, float] = {}
        self.served = 0
        self.stopping = False
        self.preloaded: list[str] = []
        self.import_environ: dict[str, str] = {}
        self.listener: socket.socket | None = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    # -- life -------------------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind under a temporary name and rename it into place: the socket appears when ready."""
        temporary = self.files.socket.with_name(f"{self.key}.{os.getpid()}.tmp")
        temporary.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(temporary))
        os.chmod(temporary, 0o600)
        listener.listen(64)
        os.replace(temporary, self.files.socket)
        self.listener = listener
        self.socket_inode = os.stat(self.files.socket).st_ino
        info = {"pid": os.getpid(), "key": self.key, "started": self.started, "idle_seconds": self.idle}
        self.files.info.write_text(json.dumps({**info, "identity": self.ident}, indent=1))
        self.log(f"ready in {time.time() - self.started:.1f} s: {len(self.preloaded)} modules preloaded")

    def still_current(self) -> str | None:
        """Why this server should stop now, if it should: its socket was removed or replaced, or its
        key changed (a package installed or removed, the server's code edited)."""
        try:
            if os.stat(self.files.socket).st_ino != self.socket_inode:
                return "its socket was replaced"
        except FileNotFoundError:
            return "its socket was removed"
        if key_of(identity(self.environ)) != self.key:
            return "its key changed (installed packages or the server's code)"
        return None

    def serve(self) -> None:
        assert self.listener is not None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        quiet_since = time.monotonic()
        next_check = time.monotonic() + CHECK_KEY_SECONDS
        while not self.stopping:
            self._reap()
            now = time.monotonic()
            if self.supervisors:
                quiet_since = now
            elif now - quiet_since >= self.idle:
                self.log(f"no stage for {self.idle:g} s: stopping")
                break
            if now >= next_check:
                next_check = now + CHECK_KEY_SECONDS
                reason = self.still_current()
                if reason:
                    self.log(f"stopping: {reason}")
                    break
            timeout = min(next_check - now, self.idle - (now - quiet_since) + 0.05)
            readable, _, _ = select.select([self.listener, self.wake_r], [], [], max(timeout, 0.05))
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            if self.listener in readable:
                served = self.served
                conn, _ = self.listener.accept()
                try:
                    self.handle(conn)
                except Exception as exc:  # one bad request never ends the server
                    self.log(f"request failed: {exc!r}")
                finally:
                    conn.close()
                if self.served != served:  # a stage, not a status request: the quiet period starts again
                    quiet_since = time.monotonic()
        self.close()

    def _stop(self, signum: int, _frame: object) -> None:
        self.log(f"signal {signum}: stopping")
        self.stopping = True

    def close(self) -> None:
        """Remove the socket (if still ours) and the info file; running stages finish on their own."""
        with contextlib.suppress(OSError):
            if os.stat(self.files.socket).st_ino == self.socket_inode:
                self.files.socket.unlink()
                self.files.info.unlink(missing_ok=True)
        if self.listener is not None:
            self.listener.close()

    def _reap(self) -> None:
        for pid in list(self.supervisors):
            with contextlib.suppress(ChildProcessError):
                done, _status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            del self.supervisors[pid]

    # -- requests ---------------------------------------------------------------------------------

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_SECONDS)
        uid = peer_uid(conn)
        if uid != os.getuid():
            self.log(f"refused a connection from uid {uid}")
            send(conn, {"refused": f"this server serves uid {os.getuid()} only, not uid {uid}"})
            return
        reader = Reader(conn)
        try:
            request = reader.frame(want_fds=3)
        finally:
            received = list(reader.fds)
        try:
            op = request.get("op")
            if op == "status":
                send(conn, self.status())
            elif op == "stop":
                self.log("asked to stop")
                self.stopping = True
                send(conn, {"stopping": os.getpid()})
            elif op == "run":
                self.run(conn, reader, request)
            else:
                send(conn, {"refused": f"unknown request {op!r}"})
        finally:
            for fd in received:
                os.close(fd)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "key": self.key,
            "started": self.started,
            "idle_seconds": self.idle,
            "running": len(self.supervisors),
            "served": self.served,
            "variables": self.ident["variables"],
            "python": self.ident["python"],
            "preloaded": self.preloaded,
            "modules": sorted(sys.modules),
        }

    def refusal(self, request: dict[str, Any], fds: list[int], conn: socket.socket) -> str | None:
        """Why this server must not fork for ``request`` now, if it must not."""
        if request.get("protocol") != PROTOCOL or request.get("key") != self.key:
            return "the request's key is not this server's"
        if len(fds) != 3:
            return f"{len(fds)} file descriptors came with the request, not 3"
        threads = len(os.listdir("/proc/self/task"))
        if threading.active_count() != 1 or threads != 1:
            return f"the server has {threads} threads; forking it would not be safe"
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return "the server has initialised CUDA"
        extra = sorted(name for name in sys.modules if project_module(name) and not own_module(name))
        if extra:
            return f"the server has imported project modules: {', '.join(extra[:5])}"
        own = {0, 1, 2, self.lock_fd, self.log.file.fileno(), self.wake_r, self.wake_w, conn.fileno(), *fds}
        others = open_files(own | {self.listener.fileno()})
        if others:
            return f"the server has files open: {', '.join(others[:5])}"
        return None

    def run(self, conn: socket.socket, reader: Reader, request: dict[str, Any]) -> None:
        reason = self.refusal(request, reader.fds, conn)
        if reason:
            self.log(f"refused {request.get('module')}: {reason}")
            send(conn, {"refused": reason})
            return
        pid = os.fork()
        if pid == 0:
            self._supervise(conn, reader, request)
        self.supervisors[pid] = time.monotonic()
        self.served += 1
        self.log(f"{request['module']} in {request['cwd']}: supervisor {pid}")

    def _supervise(self, conn: socket.socket, reader: Reader, request: dict[str, Any]) -> NoReturn:
        """In the supervisor: fork the stage's child; let it run once it has taken over the command's
        state and the command has said go; forward signals to it; send back its status."""
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            assert self.listener is not None
            self.listener.close()
            for fd in (self.lock_fd, self.wake_r, self.wake_w):
                os.close(fd)
            link, child_link = socket.socketpair()
            child = os.fork()
            if child == 0:
                from digitflow.core.warm.child import become_stage

                link.close()
                request = {**request, "import_env": self.import_environ}
                become_stage(child_link, conn, reader.fds, request, self.log)
            child_link.close()
            for fd in reader.fds:
                os.close(fd)
            reader.fds.clear()
            started = time.monotonic()
            where = f"{request['module']} in {request['cwd']}: child {child}"
            if not handshake(conn, reader, link, child):
                link.close()  # the child exits without running the stage; the command runs it cold
                os.waitpid(child, 0)
                self.log(f"{where} not started: the command runs the stage cold")
                return
            status = watch_child(conn, reader, child)
            ended = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
            self.log(f"{where}, {ended}, {time.monotonic() - started:.2f} s")  # (before the command hears it)
            with contextlib.suppress(OSError):
                send(conn, {"exit": status})
        except BaseException as exc:
            self.log(f"supervisor failed: {exc!r}")
        finally:
            os._exit(0)


def handshake(conn: socket.socket, reader: Reader, link: socket.socket, child: int) -> bool:
    """The child is ready (or says why not); the command hears so and says go; the child hears go. A
    stage runs in the child only after the command has committed to it, so a command that gave up
    waiting (and runs the stage cold) never has a second copy running here."""
    try:
        link.settimeout(REQUEST_SECONDS)
        answer = Reader(link).frame()
        if "ready" not in answer:
            send(conn, {"refused": answer.get("refused", "the child did not start")})
            return False
        send(conn, {"started": child})
        conn.settimeout(REQUEST_SECONDS)
        if reader.frame().get("go") is not True:
            return False
        conn.settimeout(None)
        send(link, {"go": True})
        return True
    except (OSError, WireError):
        return False


def watch_child(conn: socket.socket, reader: Reader, child: int) -> int:
    """Until ``child`` exits: forward each signal the command asks for; kill the child if the command
    is gone (its connection closed: SIGKILLed, as a cold stage would have been). Its wait status."""
    done = os.pidfd_open(child)
    watching = [conn, done]
    while True:
        readable, _, _ = select.select(watching, [], [])
        if done in readable:
            _pid, status = os.waitpid(child, 0)
            return status
        try:
            message = reader.frame()
        except (WireError, OSError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            watching = [done]
            continue
        signum = message.get("signal")
        if signum in FORWARDED_SIGNALS:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)


def take_lock(path: Path) -> int | None:
    """Hold the key's lock for the server's life (one server per key), with the server's pid in it
    (``digitflow server status`` and ``stop`` find a server that is still starting by it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def thread_free_environment(environ: dict[str, str] | os._Environ[str]) -> None:
    """Libraries that would start threads when imported, told not to: MLflow's telemetry, and the
    background purging thread of PyArrow's jemalloc (pandas imports PyArrow). Neither changes a result;
    jemalloc stops that thread in a forked child anyway. The children get the command's environment."""
    environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    conf = environ.get(JEMALLOC_CONF_ENV)
    environ[JEMALLOC_CONF_ENV] = f"{conf},{NO_JEMALLOC_THREAD}" if conf else NO_JEMALLOC_THREAD


def main(folder: str, expected_key: str) -> None:
    from digitflow.core.determinism import pin_cpu_kernels

    pin_cpu_kernels()  # a no-op when a stage command started the server: it had pinned them
    environ = dict(os.environ)  # what the key describes, before the server's own settings below
    ident = identity(environ)
    key = key_of(ident)
    files = ServerFiles(Path(folder), key)
    log = Log(files.log)
    if key != expected_key:
        log(f"started for key {expected_key} but this environment's key is {key}: exiting")
        return
    lock_fd = take_lock(files.lock)
    if lock_fd is None:
        return  # another server holds this key (two stages started one at the same moment)
    thread_free_environment(os.environ)
    os.chdir("/")
    server = Server(files, environ, ident, log, lock_fd)
    server.preloaded, server.import_environ = preload(log)
    warm_up(log)
    # Everything loaded so far lives as long as the server: keep it out of the children's garbage
    # collections (a full one would walk 700,000 objects, 0.8 s, and copy every page it touches).
    gc.collect()
    gc.freeze()
    server.bind()
    server.serve()


if __name__ == "__main__":
    main(*sys.argv[1:3])

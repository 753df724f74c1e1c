"""The warm stage server: import the heavy libraries once, then fork a child per stage.

    python -m digitflow.core.warm.server FOLDER KEY      (started in the background by a stage command)

Start-up: check the key it was started for, take the key's lock (one server per key), keep
``MLFLOW_DISABLE_TELEMETRY`` and PyArrow's allocator from starting threads, import ``PRELOAD`` and
nothing of the project (``preload.py``), and only then bind the socket: a server that answers is ready.

One process, one thread, one event loop: it accepts connections, answers ``status`` and ``stop``, and
for a stage request forks the child that becomes the stage and follows it to its exit (``session.py``).
Before each fork it checks that it still has one thread, no CUDA context, no project module but its own
and no file open but its own; otherwise it refuses and the command runs the stage cold. Each child asks
the kernel to kill it if the server dies (a killed server takes its running stages with it; a stopped
one lets them finish). It stops after ``DIGITFLOW_SERVER_IDLE`` seconds (default 600) without a stage,
on ``digitflow server stop`` or SIGTERM, and when its key no longer matches (a package was installed):
it then removes its socket and releases its key at once, and exits when its last stage has ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

# Imported now, not in the child: the folder the server came from may be gone by then (a deleted clone).
from digitflow.core.warm.child import become_stage
from digitflow.core.warm.identity import PROTOCOL, ServerFiles, identity, idle_seconds, key_of
from digitflow.core.warm.preload import own_module, preload, project_module, thread_free_environment
from digitflow.core.warm.session import REQUEST_SECONDS, Session, reply
from digitflow.core.warm.wire import Reader, WireError

CHECK_KEY_SECONDS = 30.0


class Log:
    """The server's log file (``<key>.log`` beside its socket); its standard streams are /dev/null."""

    def __init__(self, path: Path, limit: int = 1 << 20) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 (open for the server's life)
        if self.file.tell() > limit:  # one file per key, kept across servers of that key: bounded
            self.file.truncate(0)

    def __call__(self, message: str) -> None:
        with contextlib.suppress(OSError):
            now = time.time()
            stamp = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d}"
            self.file.write(f"{stamp} [{os.getpid()}] {message}\n")


def peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def drain(conn: socket.socket, limit: int = 1 << 20, seconds: float = 1.0) -> None:
    """Read and drop what a connection has sent, up to ``limit`` bytes or ``seconds``."""
    conn.settimeout(seconds)
    with contextlib.suppress(OSError):
        received = 0
        while received < limit:
            chunk = conn.recv(65536)
            if not chunk or len(chunk) < 65536:
                break
            received += len(chunk)


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
        self.sessions: dict[int, Session] = {}
        self.served = 0
        self.stopping = False
        self.preloaded: list[str] = []
        self.import_environ: dict[str, str] = {}
        self.selector = selectors.DefaultSelector()
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
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.log(f"ready in {time.time() - self.started:.1f} s: {len(self.preloaded)} modules preloaded")

    def still_current(self) -> str | None:
        """Why this server should stop now, if it should: its socket was removed or replaced, or its
        key changed (a package installed, upgraded or removed)."""
        try:
            if os.stat(self.files.socket).st_ino != self.socket_inode:
                return "its socket was replaced"
        except FileNotFoundError:
            return "its socket was removed"
        # Its own code is what it loaded (the folder it came from may be gone): the rest is read again.
        if key_of({**identity(self.environ), "server": self.ident["server"]}) != self.key:
            return "its key changed (the interpreter or the installed packages)"
        return None

    def serve(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        signal.set_wakeup_fd(self.wake_w)
        quiet_since = time.monotonic()
        next_check = time.monotonic() + CHECK_KEY_SECONDS
        while self.listener is not None or self.sessions:
            now = time.monotonic()
            if self.sessions:
                quiet_since = now
            if self.listener is not None:
                reason = "stop requested" if self.stopping else None
                if reason is None and now - quiet_since >= self.idle:
                    reason = f"no stage for {self.idle:g} s"
                if reason is None and now >= next_check:
                    next_check = now + CHECK_KEY_SECONDS
                    reason = self.still_current()
                if reason:
                    running = f"; {len(self.sessions)} stage(s) finish first" if self.sessions else ""
                    self.log(f"stopping: {reason}{running}")
                    self.close()
                    continue
            for session in list(self.sessions.values()):
                session.check_deadline(now)
            timeout = min(next_check - now, self.idle - (now - quiet_since) + 0.05, 1.0 if self.sessions else 60.0)
            for key, _events in self.selector.select(max(timeout, 0.05)):
                if key.fileobj is self.listener:
                    served = self.served
                    self._accept()
                    if self.served != served:  # a stage, not a status request: the quiet period restarts
                        quiet_since = time.monotonic()
                elif key.fileobj == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 512)
                elif key.data is not None and key.data.readable(key.fileobj):
                    self.sessions.pop(key.data.child, None)
        self.log("stopped")

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def close(self) -> None:
        """Stop accepting: remove the socket (if still ours) and the info file, and release the key, so a
        new server may start at once; the stages running finish first."""
        with contextlib.suppress(OSError):
            if os.stat(self.files.socket).st_ino == self.socket_inode:
                self.files.socket.unlink()
                self.files.info.unlink(missing_ok=True)
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)

    # -- requests ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        forked = False
        try:
            forked = self.handle(conn)
        except Exception as exc:  # one bad request never ends the server
            self.log(f"request failed: {exc!r}")
        finally:
            if not forked:
                conn.close()

    def handle(self, conn: socket.socket) -> bool:
        """Answer one connection; whether a stage's child now holds it."""
        conn.settimeout(REQUEST_SECONDS)
        uid = peer_uid(conn)
        if uid != os.getuid():
            self.log(f"refused a connection from uid {uid}")
            drain(conn)  # closing with its request unread would reset the connection before it reads why
            reply(conn, {"refused": f"this server serves uid {os.getuid()} only, not uid {uid}"})
            return False
        reader = Reader(conn)
        try:
            request = reader.frame(want_fds=3)
        except (OSError, WireError):
            return False
        try:
            op = request.get("op")
            if op == "status":
                reply(conn, self.status())
            elif op == "stop":
                self.log("asked to stop")
                self.stopping = True
                reply(conn, {"stopping": os.getpid()})
            elif op == "run":
                return self.run(conn, reader, request)
            else:
                reply(conn, {"refused": f"unknown request {op!r}"})
            return False
        finally:
            for fd in reader.fds:
                os.close(fd)
            reader.fds.clear()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "key": self.key,
            "started": self.started,
            "idle_seconds": self.idle,
            "running": len(self.sessions),
            "served": self.served,
            "variables": self.ident["variables"],
            "python": self.ident["python"],
            "preloaded": self.preloaded,
        }

    def own_fds(self) -> set[int]:
        fds = {0, 1, 2, self.log.file.fileno(), self.wake_r, self.wake_w, self.selector.fileno()}
        if self.listener is not None:
            fds |= {self.listener.fileno(), self.lock_fd}
        for session in self.sessions.values():
            fds |= session.fds()
        return fds

    def refusal(self, request: dict[str, Any], fds: list[int], conn: socket.socket) -> str | None:
        """Why this server must not fork for ``request`` now, if it must not."""
        if self.listener is None:
            return "the server is stopping"
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
        others = open_files(self.own_fds() | {conn.fileno(), *fds})
        if others:
            return f"the server has files open: {', '.join(others[:5])}"
        return None

    def run(self, conn: socket.socket, reader: Reader, request: dict[str, Any]) -> bool:
        reason = self.refusal(request, reader.fds, conn)
        if reason:
            self.log(f"refused {request.get('module')}: {reason}")
            reply(conn, {"refused": reason})
            return False
        link, child_link = socket.socketpair()
        server = os.getpid()
        child = os.fork()
        if child == 0:
            try:  # the child becomes the stage and exits; it never returns into the server's loop
                become_stage(child_link, reader.fds, {**request, "import_env": self.import_environ}, server)
            finally:
                os._exit(1)
        child_link.close()
        self.sessions[child] = Session(conn, reader, request, child, link, self.selector, self.log)
        self.served += 1
        return True


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
    server.bind()
    server.serve()


if __name__ == "__main__":
    main(*sys.argv[1:3])

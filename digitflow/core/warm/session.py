"""One stage request in the warm server, from its connection to the stage's exit status.

The server forks the stage's child as soon as the request passes its checks. The child takes over the
command's state and says it is ready (or why it cannot be: the command then runs the stage cold); the
command hears ``started`` and answers ``go``; only then does the stage run, so a command that gave up
waiting (and runs the stage cold) never has a second copy of it running here. While the stage runs the
command's signals are forwarded to the child, and if the command is gone (its connection closed: it
was SIGKILLed) the child is killed, as the kernel would have killed a cold stage. When the child exits,
the server logs how and sends the command the wait status. Each step answers one socket or process
descriptor becoming readable, so a slow or dead command never holds up the server or another stage.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from digitflow.core.warm.wire import Reader, WireError, send

REQUEST_SECONDS = 10.0  # for each step before the stage runs: the child's set-up, the command's go
FORWARDED_SIGNALS = frozenset(
    {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}
    | {signal.SIGSTOP, signal.SIGCONT}
)
SETTING_UP, WAITING_FOR_GO, RUNNING = "setting up", "waiting for go", "running"


def reply(conn: socket.socket, message: dict[str, Any]) -> None:
    """Send a small frame on a non-blocking connection (briefly blocking); a command that is gone is
    not an error."""
    with contextlib.suppress(OSError):
        conn.settimeout(2.0)
        send(conn, message)
        conn.setblocking(False)


class Session:
    """A forked child and the command it runs a stage for."""

    def __init__(
        self,
        conn: socket.socket,
        reader: Reader,
        request: dict[str, Any],
        child: int,
        link: socket.socket,
        selector: selectors.BaseSelector,
        log: Callable[[str], None],
    ) -> None:
        self.conn, self.reader, self.request, self.child, self.link = conn, reader, request, child, link
        self.selector, self.log = selector, log
        self.link_reader = Reader(link)
        self.exited = os.pidfd_open(child)
        self.state = SETTING_UP
        self.deadline: float | None = time.monotonic() + REQUEST_SECONDS
        self.started = time.monotonic()
        self.where = f"{request['module']} in {request['cwd']}: child {child}"
        conn.setblocking(False)
        link.setblocking(False)
        for watched in (conn, link, self.exited):
            selector.register(watched, selectors.EVENT_READ, self)

    def fds(self) -> set[int]:
        return {fd for fd in (self.conn.fileno(), self.link.fileno(), self.exited) if fd >= 0}

    def readable(self, watched: Any) -> bool:
        """React to ``watched`` being readable; whether the session is over."""
        if watched == self.exited:
            self._ended()
            return True
        if watched is self.link:
            self._from_child()
        elif watched is self.conn:
            self._from_command()
        return False

    def check_deadline(self, now: float) -> None:
        if self.deadline is not None and now > self.deadline:
            self.log(f"{self.where}: no answer while {self.state}; the command runs the stage cold")
            if self.state == SETTING_UP:
                reply(self.conn, {"refused": "the server's child did not get ready in time"})
            self._abandon()

    def _forget(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()

    def _abandon(self) -> None:
        """The stage will not run here: without its go, the child exits on its own."""
        self.deadline = None
        if self.link.fileno() >= 0:
            self._forget(self.link)

    def _from_child(self) -> None:
        try:
            message = self.link_reader.frame()
        except BlockingIOError:
            return
        except (OSError, WireError):
            message = {"refused": "the server's child ended while taking over the command"}
        if "ready" in message and self.state == SETTING_UP:
            reply(self.conn, {"started": self.child})
            self.state, self.deadline = WAITING_FOR_GO, time.monotonic() + REQUEST_SECONDS
        else:
            self.log(f"{self.where}: {message.get('refused')}")
            reply(self.conn, {"refused": message.get("refused", "the server's child did not start")})
            self._abandon()

    def _from_command(self) -> None:
        try:
            message = self.reader.frame()
        except BlockingIOError:
            return
        except (OSError, WireError):  # the command is gone
            self._forget(self.conn)
            if self.state == RUNNING:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child, signal.SIGKILL)
            else:
                self._abandon()
            return
        if self.state == WAITING_FOR_GO and message.get("go") is True:
            try:
                self.link.setblocking(True)
                send(self.link, {"go": True})
            except OSError:
                return  # the child is gone: its exit is reported as the stage's
            self._forget(self.link)
            self.state, self.deadline = RUNNING, None
        elif self.state == RUNNING and message.get("signal") in FORWARDED_SIGNALS:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, message["signal"])

    def _ended(self) -> None:
        _pid, status = os.waitpid(self.child, 0)
        if self.state == RUNNING:
            ended = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
            self.log(f"{self.where}, {ended}, {time.monotonic() - self.started:.2f} s")  # before the command hears
            if self.conn.fileno() >= 0:
                reply(self.conn, {"exit": status})
        else:
            self.log(f"{self.where} not started: the command runs the stage cold")
        self.close()

    def close(self) -> None:
        for sock in (self.conn, self.link):
            if sock.fileno() >= 0:
                self._forget(sock)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.exited)
        with contextlib.suppress(OSError):
            os.close(self.exited)

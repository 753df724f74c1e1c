"""The messages between a stage command and a warm server: length-prefixed JSON frames on a Unix stream
socket; a request's first frame carries the stage command's file descriptors 0, 1 and 2 (SCM_RIGHTS),
so the stage writes straight into whatever DVC, the queue's log or the terminal gave the command.

Client to server: ``{"op": "run", ...}`` (with the descriptors), ``{"op": "status"}``, ``{"op": "stop"}``.
A run: server ``{"started": PID}`` (the child has taken over the command's state) or ``{"refused":
REASON}``; client ``{"go": true}`` (only then does the stage start); client ``{"signal": N}`` for each
signal the command receives; server ``{"exit": WAIT_STATUS}``. Between server and child, on a
socket pair: ``{"ready": true}`` or ``{"refused": REASON}``, then ``{"go": true}``.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct("!I")
MAX_FRAME = 16 * 1024 * 1024


class WireError(Exception):
    """The other side hung up or sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = encode(message)
    if fds:
        sent = socket.send_fds(sock, [data], fds)
        data = data[sent:]
    sock.sendall(data)


class Reader:
    """Reads frames from ``sock``, keeping what arrives after one frame for the next."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []

    def _fill(self, want_fds: int) -> None:
        if want_fds:
            data, fds, _flags, _address = socket.recv_fds(self.sock, 65536, want_fds)
            self.fds.extend(fds)
        else:
            data = self.sock.recv(65536)
        if not data:
            raise WireError("the other side closed the connection")
        self.buffer += data

    def frame(self, want_fds: int = 0) -> dict[str, Any]:
        while len(self.buffer) < HEADER.size:
            self._fill(want_fds)
        (length,) = HEADER.unpack_from(self.buffer)
        if length > MAX_FRAME:
            raise WireError(f"a frame of {length} bytes")
        while len(self.buffer) < HEADER.size + length:
            self._fill(want_fds)
        body = self.buffer[HEADER.size : HEADER.size + length]
        self.buffer = self.buffer[HEADER.size + length :]
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise WireError(f"not JSON: {body[:80]!r}") from exc
        if not isinstance(message, dict):
            raise WireError(f"not a message: {body[:80]!r}")
        return message

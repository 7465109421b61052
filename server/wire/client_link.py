"""A client's line to `paintstep serve`: one DEALER socket, to the server's local socket where
this user's server has one on this machine, else to its address (with CURVE keys when given);
heartbeats both ways; messages that arrive while another is awaited are kept for later.
No numpy (the Krita plugin carries this module)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import zmq

from .client_events import Forgotten, ServerError, ServerLost
from .keys import ClientKeys
from .protocol import (
    HEARTBEAT_SECONDS,
    MISSED_HEARTBEATS,
    Message,
    ProtocolError,
    decode,
    encode,
    local_address,
    new_id,
    private_dir,
)


class Link:
    def __init__(
        self, address: str, timeout: float, keys: ClientKeys | None, local: bool = True
    ) -> None:
        """`local`: reach a server of this user on this machine through its local socket
        (docs/protocol.md, "Transport") where it has one, rather than through `address`."""
        self.address = address
        self.timeout = timeout
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.route = self.local_route(address) if local and keys is None else None
        if keys is not None:
            self.socket.curve_serverkey = keys.server_public
            self.socket.curve_publickey = keys.public
            self.socket.curve_secretkey = keys.secret
        self.socket.connect(self.route or address)
        self.forgotten = False  # the server said it does not know this connection
        self.last_sent = 0.0
        self.pending: list[Message] = []  # messages that arrived while waiting for another

    @staticmethod
    def local_route(address: str) -> str | None:
        """The server's local socket for `address`, where there is one of this user's."""
        local = local_address(address)
        if local is None or not zmq.has("ipc"):
            return None
        path = local.removeprefix("ipc://")
        if not private_dir(os.path.dirname(path)) or not os.path.exists(path):
            return None
        return local

    def close(self) -> None:
        self.socket.close(linger=0)

    def send(self, message: Message) -> str:
        """Queue a message; never blocks. Raises ServerLost when there is no way to the server."""
        message.id = message.id or new_id()
        self.last_sent = time.monotonic()
        try:
            self.socket.send_multipart(encode(message), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            # No connection to queue on: a refused handshake (wrong keys) or a full queue.
            if message.type != "heartbeat":
                raise ServerLost(
                    f"Cannot reach the Paintstep server at {self.address}; check that it runs "
                    "there and, if it needs keys, that yours are among those it accepts."
                ) from None
        return message.id

    def receive(self, wait: float, patient: bool = False) -> Message | None:
        """The next message (heartbeats answered and skipped), or None after `wait` s of quiet.
        `patient`: a heartbeat from the server counts as an answer (a job may wait in its
        queue or denoise for minutes; only a silent server is a lost one)."""
        deadline = time.monotonic() + wait
        while True:
            if time.monotonic() - self.last_sent >= HEARTBEAT_SECONDS:
                self.send(Message("heartbeat"))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.socket.poll(int(min(left, HEARTBEAT_SECONDS) * 1000)):
                continue
            frames = self.socket.recv_multipart(copy=False)
            try:
                message = decode(frames)
            except ProtocolError as error:
                raise ServerError(error.code, f"The server sent a bad message: {error}") from None
            if message.type == "error" and message.content.get("code") == "unknown_client":
                self.forgotten = True
                raise Forgotten()
            if message.type != "heartbeat":
                return message
            if patient:
                deadline = time.monotonic() + wait

    def wait_for(
        self, wanted: Callable[[Message], bool], what: str, patient: bool = False
    ) -> Message:
        """The first message for which wanted(message) holds; others are kept for later."""
        for index, message in enumerate(self.pending):
            if wanted(message):
                return self.pending.pop(index)
        silence = max(self.timeout, HEARTBEAT_SECONDS * MISSED_HEARTBEATS)
        while True:
            message = self.receive(silence, patient)
            if message is None:
                raise ServerLost(
                    f"The Paintstep server at {self.address} did not answer {what} within "
                    f"{silence:.0f} s; check that `paintstep serve` is running there."
                )
            if wanted(message):
                return message
            self.pending.append(message)

    def request(self, message: Message, what: str) -> Message:
        ident = self.send(message)
        while True:  # a request is answered even when the server forgot the connection
            try:
                reply = self.wait_for(lambda m: m.re == ident, what)
                break
            except Forgotten:
                continue
        if reply.type == "error":
            raise ServerError(reply.content.get("code", ""), reply.content.get("message", ""))
        return reply

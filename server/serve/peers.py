"""Shared memory with the clients on this machine that run as the server's user
(docs/protocol.md, "Shared memory"): their images come in through their segments, and large
layers go out through a ring of the server's own."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import zmq

from ..wire import shared
from ..wire.protocol import Message, ProtocolError
from .jobs import Route

log = logging.getLogger("paintstep.serve")

MAX_SHARED_BYTES = 2 << 30  # the server's shared-memory rings, all clients together


class Peer:
    """A client on this machine that showed it runs as the server's user: images go through
    shared memory both ways."""

    MOST_RING_BYTES = 1 << 30

    def __init__(
        self, token: bytes, first: shared.Segment, room_left: Callable[[], int] = lambda: 1 << 62
    ) -> None:
        self.token = token
        self.room_left = room_left  # bytes all rings together may still grow by
        self.inboxes: dict[str, shared.Segment] = {first.name: first}  # the client's segments
        self.ring: shared.Ring | None = None  # the server's, for layers going out
        self.largest = 0  # bytes: the largest layer this client was sent

    def read(self, place: dict[str, Any], length: int) -> Any:
        """Pixels the client put in one of its segments (a copy: it reuses the segment)."""
        name = place.get("name")
        try:
            segment = self.inboxes.get(name)
            if segment is None:
                segment = shared.Segment.open(name, self.token)
                for old in list(self.inboxes.values()):  # the client has moved on from them
                    old.close()
                self.inboxes = {name: segment}
            return segment.read(place.get("offset"), length)
        except shared.SharedError as error:
            raise ProtocolError(
                "bad_image",
                f"Cannot read the image from shared memory ({error}); send it as a frame.",
            ) from None

    def place(self, data: Any) -> dict[str, Any] | None:
        """Copy a layer into the ring; where it lies, or None when there is no room now."""
        size = len(data)
        self.largest = max(self.largest, size)
        # Room for two of the largest layers yet: one being read while the next is written.
        room = min(max(2 * shared.aligned(self.largest), 8 << 20), self.MOST_RING_BYTES)
        if self.ring is not None and not self.ring.busy and self.ring.segment.size < room:
            self.ring.segment.close()  # grown out of: all released, so nobody needs it
            self.ring = None
        if self.ring is None:
            if room > self.room_left():
                return None  # the server's budget for shared memory is spent: frames
            try:
                self.ring = shared.Ring(shared.Segment.create(room + shared.HEADER_BYTES))
            except shared.SharedError as error:
                log.debug("no shared memory for layers: %s", error)
                return None
        offset = self.ring.allocate(size)
        if offset is None:
            return None
        self.ring.segment.write(offset, data)
        return {"name": self.ring.segment.name, "offset": offset}

    def with_shared_layer(self, message: Message) -> Message | None:
        """A step `message` with its large layer placed in the ring instead of frame 0 (which
        stays, empty, so the other buffers keep their numbers); None where it stays as it is."""
        if message.type != "step" or not message.buffers:
            return None
        layer = message.content.get("layer")
        if not layer or layer.get("buffer") != 0 or len(message.buffers[0]) < shared.SMALLEST:
            return None
        place = self.place(message.buffers[0])
        if place is None:
            return None
        layer = {key: value for key, value in layer.items() if key != "buffer"}
        layer["shared"] = place
        content = {**message.content, "layer": layer}
        return replace(message, content=content, buffers=[b"", *message.buffers[1:]])

    def release(self, name: Any, offset: Any) -> None:
        if self.ring is not None and name == self.ring.segment.name:
            self.ring.release(offset)
            self.ring.segment.unlink()  # the client has it mapped: the name can go

    def close(self) -> None:
        for segment in self.inboxes.values():
            segment.close()
        if self.ring is not None:
            self.ring.segment.close()
        self.inboxes, self.ring = {}, None


class Peers:
    """The clients that share memory with the server. Only clients on the local socket, which
    only this user reaches, may (`enabled`), and of those only the ones the OS says run as this
    user, where it says."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and shared.available()
        if self.enabled:
            shared.sweep()
        self.peers: dict[Route, Peer] = {}
        self.own_user: set[Route] = set()  # clients the OS says run as the server's user

    def get(self, route: Route) -> Peer | None:
        return self.peers.get(route)

    def hello(self, route: Route, frame: zmq.Frame | None) -> None:
        """A client says hello: `frame` is its first, where it came on the local socket."""
        self.own_user.discard(route)
        if frame is not None and same_user(frame):
            self.own_user.add(route)

    def share_with(self, route: Route, offer: Any) -> bool:
        """Whether a client's offer of shared memory holds: its segment is of our user, and
        nobody else's to read, and holds the token it sent."""
        self.forget(route, keep_user=True)
        if not self.enabled or not isinstance(offer, dict) or route not in self.own_user:
            return False
        try:
            token = bytes.fromhex(offer.get("token", ""))
            if len(token) != shared.TOKEN_BYTES:
                return False
            name = offer.get("name")
            rings = (peer.ring for peer in self.peers.values())
            if any(ring is not None and ring.segment.name == name for ring in rings):
                return False  # the server's own segment, holding another client's layers
            segment = shared.Segment.open(name, token)
            self.peers[route] = Peer(token, segment, self.room_left)
        except (ValueError, TypeError) as error:
            log.debug("client %s offered shared memory that fails: %s", route[-1].hex(), error)
            return False
        return True

    def room_left(self) -> int:
        rings = (peer.ring for peer in self.peers.values())
        return MAX_SHARED_BYTES - sum(ring.segment.size for ring in rings if ring is not None)

    def release(self, route: Route, name: Any, offset: Any) -> None:
        peer = self.peers.get(route)
        if peer is not None:
            peer.release(name, offset)

    def forget(self, route: Route, keep_user: bool = False) -> None:
        peer = self.peers.pop(route, None)
        if peer is not None:
            peer.close()
        if not keep_user:
            self.own_user.discard(route)

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        self.peers.clear()


def same_user(frame: zmq.Frame) -> bool:
    """Whether the OS says the client on the local socket runs as this server's user: libzmq
    appends the peer's uid, gid and pid (SO_PEERCRED) to an ipc peer's address. Where the OS
    does not say, only the socket's 0700 folder lets a client in."""
    try:
        fields = frame.get("Peer-Address").split(":")
    except (zmq.ZMQError, AttributeError):
        return True
    if len(fields) < 4 or not fields[-3].isdigit():
        return True
    return int(fields[-3]) == os.getuid()

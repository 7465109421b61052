"""A client's side of shared memory with a server of this user on this machine
(docs/protocol.md, "Shared memory"): the segment its images go out in, the server's segments
its layers come in through, and how many bytes went either way. No numpy (the Krita plugin
carries this module)."""

from __future__ import annotations

import os
from typing import Any

from . import shared
from .client_events import ServerError
from .protocol import Message, image_field


class SharedMemory:
    def __init__(self) -> None:
        self.token = os.urandom(shared.TOKEN_BYTES)
        self.outbox: shared.Segment | None = None
        self.inboxes: dict[str, shared.Segment] = {}
        self.agreed = False  # the server's welcome agreed to share memory
        self.bytes = 0

    @property
    def sending(self) -> bool:
        """Whether images go out through shared memory."""
        return self.outbox is not None

    def offer(self) -> dict[str, str] | None:
        """What hello says to share memory: a segment of our own with our token in it (only a
        process of the server's own user can show one, and only then do pixels go through
        memory), or None where there is no room for one."""
        try:
            shared.sweep()
            self.outbox = shared.Segment.create(shared.HEADER_BYTES, self.token)
        except shared.SharedError:
            self.outbox = None
            return None
        return {"name": self.outbox.name, "token": self.token.hex()}

    def settle(self, agreed: bool) -> None:
        """After the server's answer to hello: share from now on, or not at all."""
        self.unlink()  # mapped by the server now, or never: the name can go
        if agreed:
            self.agreed = True
        else:
            self.drop()

    def unlink(self) -> None:
        if self.outbox is not None:
            self.outbox.unlink()

    def stop_sending(self) -> None:
        """Send images as frames from now on. Layers the server puts in its own memory are
        still read: that needs no room here."""
        if self.outbox is not None:
            self.outbox.close()
        self.outbox = None

    def drop(self) -> None:
        """Stop sharing memory both ways (and unmap it)."""
        self.stop_sending()
        for segment in self.inboxes.values():
            segment.close()
        self.inboxes, self.agreed = {}, False

    def generate_message(self, content: dict[str, Any], images: dict[str, Any]) -> Message:
        """A generate message whose large images lie in our segment (a larger one if need be);
        the server copies them out before it answers, so the segment is free again then.
        Raises shared.SharedError where there is no room for them."""
        buffers: list[Any] = []
        fields, place = [], shared.HEADER_BYTES
        for name, image in images.items():
            pixels: list[Any] = []
            field = content[name] = image_field(image, pixels)
            data = pixels[0]
            if len(data) >= shared.SMALLEST:
                fields.append((field, data, place))
                place += shared.aligned(len(data))
            else:
                field["buffer"] = len(buffers)
                buffers.append(data)
        if fields and place > self.outbox.size:
            grown = shared.Segment.create(place, self.token)
            self.outbox.close()
            self.outbox = grown
        for field, data, offset in fields:
            self.outbox.write(offset, data)
            del field["buffer"]
            field["shared"] = {"name": self.outbox.name, "offset": offset}
            self.bytes += len(data)
        return Message("generate", content, buffers)

    def read(self, place: dict[str, Any], length: int) -> bytes:
        """Copy a layer out of the server's segment (the caller tells the server it is free)."""
        name, offset = place.get("name"), place.get("offset")
        if not self.agreed:
            raise ServerError("bad_image", "The server sent a layer through memory unasked.")
        try:
            segment = self.inboxes.get(name)
            if segment is None:
                segment = shared.Segment.open(name)
                # The server moves to a new segment only once all of the old one is released.
                for old in self.inboxes.values():
                    old.close()
                self.inboxes = {name: segment}
            data = segment.read(offset, length)
        except shared.SharedError as error:
            raise ServerError(
                "bad_image", f"Cannot read a layer the server shared: {error}."
            ) from None
        self.bytes += length
        return data

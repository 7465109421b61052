"""A small client for `paintstep serve`: the Krita docker and the CLI use it.

No Qt, no torch, no numpy (Krita's Python has none): images are RawImage bytes, or numpy
arrays where numpy is around.

    with Client("tcp://127.0.0.1:5571") as client:
        for event in client.generate(canvas, steps=16):
            ...  # Accepted, Progress, Step, Done

Events of a job arrive in order. A dead or unreachable server raises ServerLost with a sentence
that says what to do; the server's own refusals raise ServerError.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import zmq

from . import shared
from .keys import ClientKeys
from .protocol import (
    DEFAULT_ADDRESS,
    HEARTBEAT_SECONDS,
    MISSED_HEARTBEATS,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    RawImage,
    decode,
    encode,
    image_field,
    local_address,
    new_id,
    private_dir,
    read_raw_image,
)

RESUMES = 5  # times in a row a job's stream is picked up again before the server counts as lost


class ServerLost(ConnectionError):
    """The server cannot be reached or stopped answering."""


class Forgotten(Exception):
    """The server does not know this connection any more (error `unknown_client`)."""


class ServerError(RuntimeError):
    """The server refused or failed a request; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Accepted:
    job: str
    position: int
    steps: int
    state: str
    start: RawImage | None = None  # frame 0, when the job was fetched


@dataclass(frozen=True)
class Progress:
    job: str
    done: float
    stage: str


@dataclass(frozen=True)
class Step:
    """One step of a job: its layer (placed at x, y on the canvas) and a thumbnail of frame k."""

    job: str
    index: int
    steps: int
    x: int
    y: int
    layer: RawImage
    thumbnail: RawImage

    def to_layer(self) -> Any:
        """As the library's StepLayer (needs numpy)."""
        from .process import StepLayer

        return StepLayer(self.index, self.x, self.y, self.layer.array(), self.thumbnail.array())


@dataclass(frozen=True)
class Done:
    job: str
    state: str  # finished or cancelled
    steps: int


class Client:
    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        timeout: float = 5.0,
        keys: ClientKeys | None = None,
        max_side: int = 1 << 15,
        local: bool = True,
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
        self.max_side = max_side
        self.welcome: dict[str, Any] = {}
        self.last_sent = 0.0
        self.pending: list[Message] = []  # messages that arrived while waiting for another
        # Shared memory with a server on this machine (docs/protocol.md): the segment images
        # go out in, the server's segments layers come in through, and how much came that way.
        self.token = os.urandom(shared.TOKEN_BYTES)
        self.outbox: shared.Segment | None = None
        self.inboxes: dict[str, shared.Segment] = {}
        self.agreed = False  # the server's welcome agreed to share memory
        self.shared_bytes = 0
        self.wants_shared = self.route is not None and shared.available()

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

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close(linger=0)
        self.drop_shared()

    def drop_shared(self) -> None:
        """Stop sharing memory both ways (and unmap it)."""
        self.stop_sending_shared()
        for segment in self.inboxes.values():
            segment.close()
        self.inboxes, self.agreed = {}, False

    def stop_sending_shared(self) -> None:
        """Send images as frames from now on. Layers the server puts in its own memory are
        still read: that needs no room here."""
        if self.outbox is not None:
            self.outbox.close()
        self.outbox = None

    @property
    def uses_shared(self) -> bool:
        """Whether images go out through shared memory."""
        return self.outbox is not None

    # -- talking ------------------------------------------------------------------------------

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

    # -- the protocol's requests --------------------------------------------------------------

    def connect(self) -> dict[str, Any]:
        """Say hello; returns the server's welcome (engines, limits)."""
        hello = Message("hello", {"client": "paintstep-client", "protocols": [PROTOCOL_VERSION]})
        self.drop_shared()
        if self.wants_shared:
            # A segment of our own with our token in it: only a process of the server's own
            # user can show one, and only then do pixels go through memory.
            try:
                shared.sweep()
                self.outbox = shared.Segment.create(shared.HEADER_BYTES, self.token)
                hello.content["shared"] = {"name": self.outbox.name, "token": self.token.hex()}
            except shared.SharedError:
                self.outbox = None
        reply = None
        self.forgotten = False
        try:
            ident = self.send(hello)
            while reply is None:
                try:
                    message = self.receive(self.timeout)
                except Forgotten:  # a heartbeat it sent before this hello
                    self.forgotten = False
                    continue
                if message is None:
                    raise ServerLost(
                        f"No Paintstep server answers at {self.address}; start one with "
                        "`paintstep serve` (or check the address and keys)."
                    )
                if message.re == ident:
                    reply = message
        finally:
            if self.outbox is not None:
                self.outbox.unlink()  # mapped by the server now, or never: the name can go
            if reply is None or reply.type == "error" or reply.content.get("shared") is not True:
                self.drop_shared()
            else:
                self.agreed = True
        if reply.type == "error":
            raise ServerError(reply.content.get("code", ""), reply.content.get("message", ""))
        self.welcome = reply.content
        self.max_side = self.welcome.get("limits", {}).get("max_side", self.max_side)
        return self.welcome

    def generate(
        self,
        canvas: Any,
        *,
        target: Any = None,
        mask: Any = None,
        steps: int = 16,
        seed: int = 0,
        engine: str = "strokes",
        options: dict[str, Any] | None = None,
        paper: str | None = None,
        prompt: str | None = None,
        complete: bool = False,
        name: str = "",
        meta: dict[str, Any] | None = None,
    ) -> Iterator[Accepted | Progress | Step | Done]:
        """Start a job and follow it: Accepted, then Progress and Steps, then Done.

        Images are RawImage or numpy arrays: canvas and target RGBA, mask gray (non-zero: paint).
        `complete` (no target): start on the canvas and let the engine invent the rest.
        """
        content: dict[str, Any] = {
            "steps": int(steps),
            "seed": int(seed),
            "engine": engine,
            "options": dict(options or {}),
            "name": name,
            "meta": dict(meta or {}),
        }
        images = {"canvas": canvas, "target": target, "mask": mask}
        images = {name: image for name, image in images.items() if image is not None}
        if paper is not None:
            content["paper"] = paper
        if prompt:
            content["prompt"] = prompt
        if complete:
            content["complete"] = True
        if self.uses_shared:
            try:
                message = self.with_shared(content, images)
            except shared.SharedError:  # no room in /dev/shm for this canvas: frames
                self.stop_sending_shared()
        if self.uses_shared:
            try:
                accepted = self.request(message, "the new job")
            except ServerError as error:
                if error.code != "bad_image":
                    raise
                self.drop_shared()  # the server cannot read our memory: frames from now on
            else:
                return self.follow(accepted)
            finally:
                if self.outbox is not None:
                    self.outbox.unlink()  # the server has mapped it (or never will)
        buffers: list[Any] = []
        for name, image in images.items():
            content[name] = image_field(image, buffers)
        accepted = self.request(Message("generate", content, buffers), "the new job")
        return self.follow(accepted)

    def with_shared(self, content: dict[str, Any], images: dict[str, Any]) -> Message:
        """A generate message whose large images lie in our segment (a larger one if need be);
        the server copies them out before it answers, so the segment is free again then."""
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
            self.shared_bytes += len(data)
        return Message("generate", content, buffers)

    def generate_request(
        self, request: Any, **kwargs: Any
    ) -> Iterator[Accepted | Progress | Step | Done]:
        """generate() for a paintstep.process.PaintRequest (the library's side)."""
        mask = None if request.mask is None else request.mask.astype("uint8") * 255
        return self.generate(
            request.canvas,
            target=request.target,
            mask=mask,
            steps=request.steps,
            seed=request.seed,
            options=request.options,
            paper=request.paper,
            prompt=request.prompt,
            complete=request.complete,
            **kwargs,
        )

    def fetch(self, job: str) -> Iterator[Accepted | Progress | Step | Done]:
        """Every step a job has so far, then the rest as it comes (if it still runs)."""
        accepted = self.request(Message("fetch_job", job=job), f"fetching job {job}")
        return self.follow(accepted)

    def cancel(self, job: str) -> None:
        self.send(Message("cancel", job=job))

    def list_jobs(self) -> list[dict[str, Any]]:
        return self.request(Message("list_jobs"), "the list of jobs").content.get("jobs", [])

    def delete(self, job: str) -> None:
        self.request(Message("delete_job", job=job), f"deleting job {job}")

    def follow(self, accepted: Message) -> Iterator[Accepted | Progress | Step | Done]:
        """A job's events. Where the server forgot this connection (it was silent too long, or
        the server's TCP side restarted), say hello again and fetch the job: the steps go on
        from the last one yielded."""
        job = accepted.job or ""
        content = accepted.content
        start = read_raw_image(content, "start", accepted.buffers, self.max_side)
        yield Accepted(
            job,
            content.get("position", 0),
            content.get("steps", 0),
            content.get("state", ""),
            start,
        )
        last, resumes = 0, 0
        if self.forgotten:  # said while waiting for `accepted`: the job's stream went astray
            resumes = self.resume(job, resumes)
        while True:
            try:
                message = self.wait_for(lambda m: m.job == job, f"job {job}", patient=True)
            except Forgotten:
                resumes = self.resume(job, resumes)
                continue
            if message.type == "step":
                if message.content.get("index", 0) <= last:
                    continue  # sent again by the fetch that resumed the job
                last, resumes = message.content["index"], 0
                yield self.read_step(message)
            elif message.type == "progress":
                yield Progress(
                    job, message.content.get("done", 0.0), message.content.get("stage", "")
                )
            elif message.type == "done":
                yield Done(job, message.content.get("state", ""), message.content.get("steps", 0))
                return
            elif message.type == "error":
                raise ServerError(
                    message.content.get("code", ""), message.content.get("message", "")
                )

    def resume(self, job: str, resumes: int) -> int:
        """Say hello again and fetch `job`; how many resumes in a row this makes."""
        if resumes >= RESUMES:
            raise ServerLost(
                f"The Paintstep server at {self.address} keeps dropping this connection; check "
                f"its log, then fetch job {job} again."
            )
        self.pending = [m for m in self.pending if m.job != job]
        self.connect()
        self.request(Message("fetch_job", job=job), f"fetching job {job}")
        return resumes + 1

    def read_step(self, message: Message) -> Step:
        content = message.content
        layer = read_raw_image(content, "layer", message.buffers, self.max_side, shared=self.take)
        small = read_raw_image(content, "thumbnail", message.buffers, self.max_side)
        if layer is None or small is None:
            raise ServerError("bad_message", "The server sent a step without its pixels.")
        return Step(
            message.job or "",
            content["index"],
            content.get("steps", 0),
            content["x"],
            content["y"],
            layer,
            small,
        )

    def take(self, place: dict[str, Any], length: int) -> bytes:
        """Copy a layer out of the server's segment and tell the server that part is free."""
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
        self.send(Message("release", {"name": name, "offset": offset}))
        self.shared_bytes += length
        return data

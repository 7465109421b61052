"""A small client for `paintstep serve`: the Krita docker and the CLI use it.

No Qt, no torch, no numpy (Krita's Python has none): images are RawImage bytes, or numpy
arrays where numpy is around.

    with Client("tcp://127.0.0.1:5571") as client:
        for event in client.generate(canvas, steps=16):
            ...  # Accepted, Progress, Step, Done

Events of a job arrive in order. A dead or unreachable server raises ServerLost with a sentence
that says what to do; the server's own refusals raise ServerError. The socket and its
heartbeats are in client_link.py, shared memory in client_shared.py, the events and errors in
client_events.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import shared
from .client_events import Accepted, Done, Forgotten, Progress, ServerError, ServerLost, Step
from .client_link import Link
from .client_shared import SharedMemory
from .keys import ClientKeys
from .protocol import (
    DEFAULT_ADDRESS,
    PROTOCOL_VERSION,
    Message,
    image_field,
    read_raw_image,
)

__all__ = [
    "Accepted",
    "Client",
    "Done",
    "Forgotten",
    "Progress",
    "RESUMES",
    "ServerError",
    "ServerLost",
    "Step",
]

RESUMES = 5  # times in a row a job's stream is picked up again before the server counts as lost


class Client(Link):
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
        super().__init__(address, timeout, keys, local)
        self.max_side = max_side
        self.welcome: dict[str, Any] = {}
        self.memory = SharedMemory()  # with a server on this machine, agreed in hello
        self.wants_shared = self.route is not None and shared.available()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        super().close()
        self.drop_shared()

    def drop_shared(self) -> None:
        """Stop sharing memory both ways (and unmap it)."""
        self.memory.drop()

    def stop_sending_shared(self) -> None:
        """Send images as frames from now on; layers in the server's memory are still read."""
        self.memory.stop_sending()

    @property
    def uses_shared(self) -> bool:
        """Whether images go out through shared memory."""
        return self.memory.sending

    @property
    def shared_bytes(self) -> int:
        """How many bytes of pixels went through shared memory, either way."""
        return self.memory.bytes

    @property
    def inboxes(self) -> dict[str, shared.Segment]:
        """The server's segments that layers come in through, by name."""
        return self.memory.inboxes

    # -- the protocol's requests --------------------------------------------------------------

    def connect(self) -> dict[str, Any]:
        """Say hello; returns the server's welcome (engines, limits)."""
        hello = Message("hello", {"client": "paintstep-client", "protocols": [PROTOCOL_VERSION]})
        self.drop_shared()
        if self.wants_shared:
            offer = self.memory.offer()
            if offer is not None:
                hello.content["shared"] = offer
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
            agreed = reply is not None and reply.type != "error"
            self.memory.settle(agreed and reply.content.get("shared") is True)
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
                message = self.memory.generate_message(content, images)
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
                self.memory.unlink()  # the server has mapped it (or never will)
        buffers: list[Any] = []
        for name, image in images.items():
            content[name] = image_field(image, buffers)
        accepted = self.request(Message("generate", content, buffers), "the new job")
        return self.follow(accepted)

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

    # -- following a job ----------------------------------------------------------------------

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
                resumes = self.resume(job, resumes, last)
                continue
            if message.type == "step":
                index = message.content.get("index", 0)
                if index <= last:
                    continue  # sent again by the fetch that resumed the job
                if index > last + 1:  # lost on the way (a queue was full): fetch the rest
                    resumes = self.resume(job, resumes, last)
                    continue
                last, resumes = index, 0
                yield self.read_step(message)
            elif message.type == "progress":
                yield Progress(
                    job, message.content.get("done", 0.0), message.content.get("stage", "")
                )
            elif message.type == "done":
                if message.content.get("steps", 0) > last:  # steps were lost on the way
                    resumes = self.resume(job, resumes, last)
                    continue
                yield Done(job, message.content.get("state", ""), message.content.get("steps", 0))
                return
            elif message.type == "error":
                raise ServerError(
                    message.content.get("code", ""), message.content.get("message", "")
                )

    def resume(self, job: str, resumes: int, last: int = 0) -> int:
        """Say hello again and fetch `job`'s steps after `last`; how many resumes in a row this
        makes. What the job's earlier stream still brings before the fetch's answer is dropped."""
        if resumes >= RESUMES:
            raise ServerLost(
                f"The Paintstep server at {self.address} keeps dropping this connection; check "
                f"its log, then fetch job {job} again."
            )
        self.pending = [m for m in self.pending if m.job != job]
        self.connect()
        fetch = Message("fetch_job", {"after": last}, job=job)
        self.request(fetch, f"fetching job {job}")
        self.pending = [m for m in self.pending if m.job != job]
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
            stage if isinstance(stage := content.get("stage"), str) else None,
        )

    def take(self, place: dict[str, Any], length: int) -> bytes:
        """Copy a layer out of the server's segment and tell the server that part is free."""
        data = self.memory.read(place, length)
        self.send(Message("release", {"name": place.get("name"), "offset": place.get("offset")}))
        return data

"""What the server answers to each message a client sends (docs/protocol.md): one `on_<type>`
method per type. `generate_from` turns a generate message into a checked request without any
socket, so that what the server accepts can be tested on its own."""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from .. import __version__
from ..engines import engine_names, get_engine
from ..process import MAX_STEPS, PaintError, PaintRequest
from ..result import JobState
from ..wire.protocol import HEARTBEAT_SECONDS, PROTOCOL_VERSION, Message, ProtocolError, read_image
from .jobs import Job, JobStore, Route, Turns, request_bytes
from .parking import Parking
from .peers import Peers
from .settings import ServerSettings
from .worker import Fetch

log = logging.getLogger("paintstep.serve")

MAX_QUEUED = 64  # jobs waiting, all clients together
MAX_QUEUED_PER_CLIENT = 8
MAX_QUEUED_BYTES = 4 << 30  # pixels held by waiting jobs, all clients together
MAX_QUEUED_BYTES_PER_CLIENT = 1 << 30
MAX_META_BYTES = 4096


@dataclass
class Generate:
    """A generate message, checked: the request as the engine will paint it, and the job's
    name and notes."""

    request: PaintRequest
    engine: str
    options: dict[str, Any]  # the engine's, as it reads them, with their defaults
    name: str
    meta: dict[str, Any]


def generate_from(
    message: Message, max_side: int, shared: Callable[[dict[str, Any], int], Any] | None = None
) -> Generate:
    """Check a generate message exactly as the engine would (`PaintRequest.validate`,
    `Engine.settings`): ProtocolError for a malformed message, PaintError for a request the
    engine refuses. `shared` reads images the client put in shared memory."""
    content = message.content
    canvas = read_image(content, "canvas", message.buffers, max_side, shared=shared)
    if canvas is None:
        raise ProtocolError("bad_message", "A generate message needs a canvas.")
    target = read_image(content, "target", message.buffers, max_side, shared=shared)
    mask = read_image(content, "mask", message.buffers, max_side, ("gray8",), shared)
    engine_name = content.get("engine", "strokes")
    if not isinstance(engine_name, str):
        raise ProtocolError("bad_message", "The engine must be a name.")
    engine = get_engine(engine_name)
    options = content.get("options", {})
    if not isinstance(options, dict):
        raise ProtocolError("bad_message", "The options must be a map.")
    for key in ("paper", "prompt"):
        if content.get(key) is not None and not isinstance(content[key], str):
            raise ProtocolError("bad_message", f"The {key} must be a string.")
    if not isinstance(content.get("complete", False), bool):
        raise ProtocolError("bad_message", "complete must be true or false.")
    request = PaintRequest(
        canvas=canvas,
        target=target,
        mask=None if mask is None else mask > 0,
        steps=content.get("steps", 16),
        seed=content.get("seed", 0),
        paper=content.get("paper"),
        options=options,
        prompt=content.get("prompt", ""),
        complete=content.get("complete", False),
    )
    if not isinstance(request.seed, int) or isinstance(request.seed, bool):
        raise PaintError("The seed must be a whole number.")
    request.validate()
    settings = engine.settings(request)
    name = content.get("name", "")
    meta = content.get("meta", {})
    if not isinstance(meta, dict) or len(msgpack.packb(meta)) > MAX_META_BYTES:
        raise ProtocolError("bad_message", "The meta of a job must be a map under 4 KB.")
    return Generate(request, engine_name, settings, name if isinstance(name, str) else "", meta)


class Handlers:
    """The server's answers. They run on its main thread, which owns the jobs and the sockets;
    `send` sends a message to a client."""

    def __init__(
        self,
        settings: ServerSettings,
        server_id: str,
        store: JobStore,
        turns: Turns,
        peers: Peers,
        fetches: queue.Queue[Fetch | None],
        send: Callable[[Route, Message], None],
        parking: Parking,
    ) -> None:
        self.settings = settings
        self.server_id = server_id
        self.store = store
        self.turns = turns
        self.peers = peers
        self.fetches = fetches
        self.send = send
        self.parking = parking

    def handle(self, route: Route, message: Message) -> None:
        handler = getattr(self, f"on_{message.type}", None)
        if handler is None:
            raise ProtocolError(
                "unknown_type", f"The server does not take {message.type} messages."
            )
        handler(route, message)

    def on_heartbeat(self, route: Route, message: Message) -> None:
        pass

    def on_error(self, route: Route, message: Message) -> None:
        log.warning("client %s reports: %s", route[-1].hex(), message.content.get("message"))

    def on_hello(self, route: Route, message: Message) -> None:
        protocols = message.content.get("protocols", [PROTOCOL_VERSION])
        if not isinstance(protocols, list) or PROTOCOL_VERSION not in protocols:
            raise ProtocolError(
                "version",
                f"This server speaks protocol {PROTOCOL_VERSION}, which the client does not list "
                "in its protocols; update Paintstep on the side that is older.",
            )
        engines = [get_engine(name).describe() for name in engine_names()]
        side = self.settings.max_side
        content = {
            "server_id": self.server_id,
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "engines": engines,
            "limits": {
                "max_side": side,
                "max_pixels": side * side,
                "max_steps": MAX_STEPS,
                "max_message_bytes": self.settings.max_message_bytes,
                "max_queued": MAX_QUEUED,
                "max_queued_per_client": MAX_QUEUED_PER_CLIENT,
            },
            "heartbeat": HEARTBEAT_SECONDS,
            "shared": self.peers.share_with(route, message.content.get("shared")),
        }
        self.send(route, Message("welcome", content, re=message.id))

    def on_release(self, route: Route, message: Message) -> None:
        self.peers.release(route, message.content.get("name"), message.content.get("offset"))

    def on_generate(self, route: Route, message: Message) -> None:
        peer = self.peers.get(route)
        asked = generate_from(message, self.settings.max_side, None if peer is None else peer.read)
        request = asked.request
        self.check_room(route, request)
        job_id = uuid.uuid4().hex[:16]
        job = Job(
            id=job_id,
            folder=self.store.folder_of(job_id),
            name=asked.name,
            meta=asked.meta,
            engine=asked.engine,
            options=asked.options,
            steps=request.steps,
            width=request.canvas.shape[1],
            height=request.canvas.shape[0],
            request=request,
            picture_bytes=request_bytes(request),
            subscribers={route},
            owner=route,
        )
        self.store.add(job)
        position = len(self.turns.waiting()) + sum(
            1 for j in self.store if j.state == JobState.RUNNING
        )
        content = {"position": position, "steps": job.steps, "state": job.state.value}
        self.send(route, Message("accepted", content, re=message.id, job=job_id))
        log.info(
            "job %s: %s, %d steps, %dx%d", job_id, job.engine, job.steps, job.width, job.height
        )
        self.turns.put(route, job)
        self.parking.put(job)

    def check_room(self, route: Route, request: PaintRequest) -> None:
        """Refuse, as `busy` with the reason, a job that would make the server hold too much."""
        waiting = self.turns.waiting()
        own = [j for j in self.store if j.owner == route and not j.ended]
        held = sum(job.picture_bytes for job in waiting)
        own_held = sum(job.picture_bytes for job in own)
        size = request_bytes(request)
        if len(own) >= MAX_QUEUED_PER_CLIENT:
            reason = f"you have {len(own)} jobs waiting or running, the most one client may have"
        elif own_held + size > MAX_QUEUED_BYTES_PER_CLIENT:
            reason = (
                f"your waiting jobs hold {own_held >> 20} MB of pictures, the most one client may"
            )
        elif len(waiting) >= MAX_QUEUED:
            reason = f"{len(waiting)} jobs are waiting, the most it takes"
        elif held + size > MAX_QUEUED_BYTES:
            reason = f"the jobs waiting hold {held >> 20} MB of pictures, the most it keeps"
        else:
            return
        raise ProtocolError(
            "busy", f"The server is busy: {reason}; try again when one of them has finished."
        )

    def on_cancel(self, route: Route, message: Message) -> None:
        job = self.store.get(message.job)
        job.subscribers.add(route)
        if job.ended:
            self.send(route, job.done_message(re=message.id))
            return
        job.cancel.set()
        log.info("job %s: cancel asked", job.id)

    def on_list_jobs(self, route: Route, message: Message) -> None:
        content = {"jobs": [job.summary() for job in self.store.newest_first()]}
        self.send(route, Message("jobs", content, re=message.id))

    def on_fetch_job(self, route: Route, message: Message) -> None:
        """Read the job's steps so far from the cache on a fetcher thread (a large job takes
        seconds: this thread must go on answering); what the job says meanwhile waits for the
        fetch, so the client gets every step once and in order."""
        job = self.store.get(message.job)
        after = message.content.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ProtocolError("bad_message", "after must be a whole number, 0 or more.")
        job.subscribers.discard(route)
        backlog: list[Message] = []
        fetch = Fetch(
            job=job,
            route=route,
            re=message.id,
            state={"position": 0, "steps": job.steps, "state": job.state.value},
            after=after,
            upto=job.steps_done,
            recent=dict(job.recent),
            done=job.done_message() if job.ended else None,
            backlog=backlog,
        )
        job.fetching[route] = backlog
        self.fetches.put(fetch)

    def on_delete_job(self, route: Route, message: Message) -> None:
        job = self.store.get(message.job)
        job.cancel.set()
        job.subscribers.clear()
        if job.ended:
            self.store.remove(job)
        else:
            job.deleting = True
        self.send(route, Message("deleted", {}, re=message.id, job=job.id))

"""`paintstep serve`: the ZeroMQ server that paints for the Krita docker and other clients.

One thread owns the ROUTER socket and answers every message at once; engines run in worker
threads and hand their events back over an inproc socket, so the server keeps answering while
they paint. Every job is written to a lean result folder in the cache as it goes, so any client
can fetch it again, and a restarted server still lists it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

from . import __version__, paths, shared
from .engines import engine_names, get_engine
from .gateway import unpredictable_routing_ids
from .process import MAX_STEPS, PaintError, PaintRequest, StepLayer
from .protocol import (
    HEARTBEAT_SECONDS,
    MAX_HEADER_BYTES,
    MISSED_HEARTBEATS,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    decode,
    encode,
    image_field,
    is_loopback,
    local_address,
    private_dir,
    read_image,
)
from .result import ResultWriter, load_result

log = logging.getLogger("paintstep.serve")

EVENTS = "inproc://paintstep-events"
MAX_QUEUED = 64  # jobs waiting, all clients together
MAX_QUEUED_PER_CLIENT = 8
MAX_QUEUED_BYTES = 4 << 30  # pixels held by waiting jobs, all clients together
MAX_QUEUED_BYTES_PER_CLIENT = 1 << 30
SMALL_PIXELS = 512 * 512  # strokes jobs this small have a worker of their own: never stuck behind
MAX_SHARED_BYTES = 2 << 30  # the server's shared-memory rings, all clients together
FETCHERS = 2  # threads that read fetched jobs from the cache
MAX_META_BYTES = 4096

# Where a message came from: the client's routing id on the local socket, or the gateway's
# and then the client's on the gateway's TCP socket.
Route = tuple[bytes, ...]


@dataclass
class Settings:
    address: str
    cache: Path
    max_side: int = 8192
    workers: int = 1
    cache_days: float = 30.0
    cache_bytes: int = 5 * 1024**3
    keys: Path | None = None  # folder made by `paintstep keys`


class Peer:
    """A client on this machine that showed it runs as the server's user: images go through
    shared memory both ways (docs/protocol.md, "Shared memory")."""

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


@dataclass
class Job:
    id: str
    folder: Path
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # the client's own notes on the job
    engine: str = ""
    steps: int = 0
    width: int = 0
    height: int = 0
    created: float = field(default_factory=time.time)
    state: str = "queued"
    steps_done: int = 0  # sent to clients
    stored: int = 0  # written to the job's folder
    recent: dict[int, list[Any]] = field(default_factory=dict)  # sent, not yet stored
    request: PaintRequest | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    subscribers: set[Route] = field(default_factory=set)
    owner: Route = ()  # the client that asked for it
    # Clients whose fetch is being read from the cache: what the job said meanwhile, for after.
    fetching: dict[Route, list[list[Any]]] = field(default_factory=dict)
    deleting: bool = False  # removed once its worker has stopped

    def summary(self) -> dict[str, Any]:
        return {
            "job": self.id,
            "name": self.name,
            "meta": self.meta,
            "state": self.state,
            "steps": self.steps,
            "steps_done": self.steps_done,
            "width": self.width,
            "height": self.height,
            "engine": self.engine,
            "created": self.created,
        }

    @property
    def ended(self) -> bool:
        return self.state in ("finished", "cancelled", "failed", "interrupted")


class Turns:
    """Jobs waiting to be painted: a queue for each client, the clients served in turn."""

    def __init__(self) -> None:
        self.lanes: dict[Route, deque[Job]] = {}
        self.served: dict[Route, int] = {}  # the turn at which each client was last served
        self.turn = 0
        self.changed = threading.Condition()
        self.closed = False

    def put(self, owner: Route, job: Job) -> None:
        with self.changed:
            self.lanes.setdefault(owner, deque()).append(job)
            self.changed.notify_all()

    def get(self, takes: Callable[[Job], bool] = lambda job: True) -> Job | None:
        """The next job `takes` accepts, of the client served longest ago (or never); None once
        closed."""
        with self.changed:
            while not self.closed:
                lanes = [(owner, lane) for owner, lane in self.lanes.items() if takes(lane[0])]
                if lanes:
                    owner, lane = min(lanes, key=lambda item: self.served.get(item[0], 0))
                    self.turn += 1
                    self.served[owner] = self.turn
                    job = lane.popleft()
                    if not lane:
                        del self.lanes[owner], self.served[owner]
                    return job
                self.changed.wait()
            return None

    def waiting(self) -> list[Job]:
        with self.changed:
            return [job for lane in self.lanes.values() for job in lane]

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()


def is_small(job: Job) -> bool:
    return job.engine == "strokes" and job.width * job.height <= SMALL_PIXELS


def request_bytes(request: PaintRequest | None) -> int:
    if request is None:
        return 0
    images = (request.canvas, request.target, request.mask)
    return sum(image.nbytes for image in images if image is not None)


class Server:
    def __init__(self, settings: Settings, context: zmq.Context | None = None) -> None:
        self.settings = settings
        self.context = context or zmq.Context()
        self.jobs: dict[str, Job] = {}
        self.turns = Turns()
        self.seen: dict[Route, float] = {}  # client -> when it last spoke
        self.peers: dict[Route, Peer] = {}  # clients that share memory with the server
        self.own_user: set[Route] = set()  # clients the OS says run as the server's user
        # Shared memory only with clients on the local socket, which only this user reaches.
        self.local = local_address(settings.address) if zmq.has("ipc") else None
        self.shares = shared.available() and self.local is not None
        if self.shares:
            shared.sweep()
        self.server_id = self.load_server_id()
        self.stopping = threading.Event()
        self.authenticator = None
        self.gateway: subprocess.Popen | None = None
        self.gateway_id = b""
        self.gateway_started = 0.0
        self.router = self.bind()
        self.events = self.context.socket(zmq.PULL)
        self.events.bind(EVENTS)
        self.load_jobs()
        self.prune()
        self.workers = [
            threading.Thread(target=self.work, name=f"paintstep-worker-{i}", daemon=True)
            for i in range(settings.workers)
        ]
        # Small jobs have a lane of their own: a 4096 px job makes nobody wait half a minute.
        self.workers.append(
            threading.Thread(
                target=self.work, args=(is_small,), name="paintstep-small", daemon=True
            )
        )
        self.fetches: queue.Queue[Fetch | None] = queue.Queue()
        self.fetchers = [
            threading.Thread(target=self.read_fetches, name=f"paintstep-fetch-{i}", daemon=True)
            for i in range(FETCHERS)
        ]

    # -- setting up ---------------------------------------------------------------------------

    def bind(self) -> zmq.Socket:
        """The socket this process reads: the local one, with the TCP address served by the
        gateway process; where there are no ipc sockets, the TCP address itself."""
        settings = self.settings
        if not is_loopback(settings.address) and settings.keys is None:
            self.secure(None)  # says which keys it needs
        unpredictable_routing_ids()
        router = self.context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes())
        router.setsockopt(zmq.SNDHWM, 256)
        router.setsockopt(zmq.RCVHWM, 64)
        if self.local is None:
            log.warning("no ipc sockets here: any client can stop this server (issue 14)")
            if settings.keys is not None:
                self.secure(router)
            address = settings.address
        else:
            self.start_gateway(wait=True)  # fails first where another server has the port
            folder = os.path.dirname(self.local.removeprefix("ipc://"))
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if not private_dir(folder):
                router.close()
                self.stop_gateway()
                raise PaintError(
                    f"{folder} can be entered by other users or is not yours; remove it (or "
                    "set XDG_RUNTIME_DIR to a folder of your own) and start the server again."
                )
            address = self.local
        try:
            router.bind(address)
        except zmq.ZMQError as error:
            router.close()
            self.stop_gateway()
            raise PaintError(
                f"Cannot listen on {address} ({error.strerror}); another server may be "
                "running there: stop it or choose another --port."
            ) from None
        return router

    def start_gateway(self, wait: bool) -> None:
        """Start the process that serves the TCP address (paintstep.gateway); with `wait`,
        until it listens, raising PaintError when it cannot."""
        self.gateway_id = b"gateway-" + os.urandom(8).hex().encode()
        command = [sys.executable, "-m", "paintstep.gateway", self.settings.address, self.local]
        command += [self.gateway_id.decode(), str(self.max_message_bytes()), str(os.getpid())]
        if self.settings.keys is not None:
            command.append(str(self.settings.keys))
        self.gateway_started = time.monotonic()
        self.gateway = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if wait else subprocess.DEVNULL,
            stderr=subprocess.PIPE if wait else None,
            text=True,
        )
        if not wait:
            return
        line = self.gateway.stdout.readline().strip()
        if line != "ready":
            error = self.gateway.stderr.read().strip() or "the gateway did not start"
            self.gateway.wait()
            self.gateway = None
            raise PaintError(error)
        self.gateway.stdout.close()
        self.gateway.stderr.close()

    def stop_gateway(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(5)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
        self.gateway = None

    def watch_gateway(self) -> None:
        """Start the gateway again when it died (a client can make libzmq abort it): its
        clients are forgotten, and say hello again when they hear of it."""
        if self.gateway is None or self.gateway.poll() is None:
            return
        if time.monotonic() - self.gateway_started < 1.0:
            return  # dying at once (the port taken?): once a second at most
        log.warning("the TCP gateway stopped (exit %s); starting it again", self.gateway.returncode)
        self.forget([route for route in self.seen if route[0] == self.gateway_id])
        self.start_gateway(wait=False)

    def forget(self, routes: list[Route]) -> None:
        """Stop sending to these clients (their jobs go on, in the cache)."""
        for route in routes:
            self.seen.pop(route, None)
            self.own_user.discard(route)
            peer = self.peers.pop(route, None)
            if peer is not None:
                peer.close()
        for job in self.jobs.values():
            job.subscribers.difference_update(routes)

    def secure(self, router: zmq.Socket | None) -> None:
        from .keys import load_server_keys

        keys = self.settings.keys
        if keys is None:
            raise PaintError(
                f"Listening on {self.settings.address} lets other machines in, so it needs keys: "
                "run `paintstep keys` to make them, then start the server with --keys, or "
                "listen on 127.0.0.1 only."
            )
        public, secret, clients = load_server_keys(keys)
        if router is None:
            return
        from zmq.auth.thread import ThreadAuthenticator

        self.authenticator = ThreadAuthenticator(self.context)
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(clients))
        router.curve_secretkey = secret
        router.curve_publickey = public
        router.curve_server = True

    def max_message_bytes(self) -> int:
        side = self.settings.max_side
        return MAX_HEADER_BYTES + 2 * side * side * 4 + side * side

    def load_server_id(self) -> str:
        path = self.settings.cache / "server-id"
        self.settings.cache.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(uuid.uuid4().hex)
        return path.read_text().strip()

    def jobs_dir(self) -> Path:
        return self.settings.cache / "jobs"

    def load_jobs(self) -> None:
        """Jobs a previous run left in the cache; the ones it was painting were interrupted."""
        self.jobs_dir().mkdir(parents=True, exist_ok=True)
        for folder in self.jobs_dir().iterdir():
            try:
                self.load_job(folder)
            except Exception as error:  # a damaged folder must not keep the server from starting
                log.warning("skipped job folder %s, which cannot be read: %s", folder, error)
        log.info("%d jobs in the cache at %s", len(self.jobs), self.jobs_dir())

    def load_job(self, folder: Path) -> None:
        result = load_result(folder)
        manifest = result.manifest
        if not isinstance(manifest.get("steps"), list):
            raise PaintError("its manifest lists no steps")
        job = Job(
            id=folder.name,
            folder=folder,
            name=manifest.get("name", ""),
            meta=manifest.get("meta", {}),
            engine=manifest.get("engine", ""),
            steps=manifest.get("steps_planned", len(result.steps)),
            width=manifest.get("width", 0),
            height=manifest.get("height", 0),
            created=manifest.get("created", folder.stat().st_mtime),
            state=result.state,
            steps_done=len(result.steps),
            stored=len(result.steps),
        )
        if job.state in ("running", "queued"):
            job.state = "interrupted"
            manifest["state"] = "interrupted"
            manifest["message"] = "The server stopped while painting this job."
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
        self.jobs[job.id] = job

    def prune(self) -> None:
        """Remove ended jobs older than the setting, then the oldest while the cache is too big;
        never the newest (a job larger than the whole cache is kept until the next one ends)."""
        cutoff = time.time() - self.settings.cache_days * 86400
        ended = sorted((j for j in self.jobs.values() if j.ended), key=lambda j: j.created)
        for job in ended:
            if job.created < cutoff:
                self.remove(job)
        ended = ended[:-1]
        sizes = {j.id: folder_size(j.folder) for j in ended if j.id in self.jobs}
        total = sum(sizes.values())
        for job in ended:
            if total <= self.settings.cache_bytes:
                break
            if job.id in self.jobs:
                total -= sizes.get(job.id, 0)
                self.remove(job)

    def remove(self, job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        self.jobs.pop(job.id, None)
        log.info("removed job %s", job.id)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stop() is called."""
        for worker in self.workers + self.fetchers:
            worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events, zmq.POLLIN)
        log.info("Paintstep %s serving on %s", __version__, self.settings.address)
        next_beat = time.monotonic()
        try:
            while not self.stopping.is_set():
                ready = dict(poller.poll(timeout=int(HEARTBEAT_SECONDS * 250)))
                if self.events in ready:
                    self.forward_events()
                if self.router in ready:
                    self.receive()
                if time.monotonic() >= next_beat:
                    self.heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                self.watch_gateway()
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()
        self.turns.close()
        for _ in self.fetchers:
            self.fetches.put(None)
        for worker in self.workers + self.fetchers:
            if worker.is_alive():
                worker.join(timeout=5)
        self.forward_events()
        self.stop_gateway()
        self.router.close(linger=0)
        self.events.close(linger=0)
        for peer in self.peers.values():
            peer.close()
        self.peers.clear()
        if self.authenticator is not None:
            self.authenticator.stop()
        log.info("stopped")

    def receive(self) -> None:
        for _ in range(100):  # a burst at a time, so worker events are never starved
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            hops = 2 if frames[0].bytes == self.gateway_id and len(frames) > 2 else 1
            identity = tuple(frame.bytes for frame in frames[:hops])
            known = identity in self.seen
            self.seen[identity] = time.monotonic()
            try:
                message = decode(frames[hops:])
            except ProtocolError as error:
                log.debug("bad message from %s: %s", identity[-1].hex(), error.message)
                self.send_error(identity, error.code, error.message)
                continue
            if message.type == "heartbeat" and not known:
                self.send_error(
                    identity,
                    "unknown_client",
                    "The server does not know this connection (it was silent too long, or the "
                    "server's TCP side restarted); say hello again and fetch your jobs.",
                )
                continue
            if message.type == "hello":
                self.own_user.discard(identity)
                if hops == 1 and self.same_user(frames[1]):
                    self.own_user.add(identity)
            try:
                self.handle(identity, message)
            except ProtocolError as error:
                self.send_error(identity, error.code, error.message, message.id, message.job)
            except PaintError as error:
                self.send_error(identity, "bad_request", str(error), message.id, message.job)
            except Exception:
                log.exception("failed to handle a %s message", message.type)
                self.send_error(
                    identity,
                    "bad_message",
                    "The server could not handle this message; see the server's log.",
                    message.id,
                    message.job,
                )

    def send(self, identity: Route, message: Message) -> None:
        self.deliver(identity, encode(message))

    def send_error(
        self,
        identity: Route,
        code: str,
        text: str,
        re: str | None = None,
        job: str | None = None,
    ) -> None:
        self.send(identity, Message("error", {"code": code, "message": text}, re=re, job=job))

    def heartbeat(self) -> None:
        silence = HEARTBEAT_SECONDS * MISSED_HEARTBEATS
        now = time.monotonic()
        gone = [identity for identity, last in self.seen.items() if now - last > silence]
        self.forget(gone)
        for identity in gone:
            log.debug("client %s is gone", identity[-1].hex())
        for identity in self.seen:
            self.send(identity, Message("heartbeat"))

    # -- messages -----------------------------------------------------------------------------

    def handle(self, identity: Route, message: Message) -> None:
        handler = getattr(self, f"on_{message.type}", None)
        if handler is None:
            raise ProtocolError(
                "unknown_type", f"The server does not take {message.type} messages."
            )
        handler(identity, message)

    def on_heartbeat(self, identity: Route, message: Message) -> None:
        pass

    def on_error(self, identity: Route, message: Message) -> None:
        log.warning("client %s reports: %s", identity[-1].hex(), message.content.get("message"))

    def on_hello(self, identity: Route, message: Message) -> None:
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
                "max_message_bytes": self.max_message_bytes(),
                "max_queued": MAX_QUEUED,
                "max_queued_per_client": MAX_QUEUED_PER_CLIENT,
            },
            "heartbeat": HEARTBEAT_SECONDS,
            "shared": self.share_with(identity, message.content.get("shared")),
        }
        self.send(identity, Message("welcome", content, re=message.id))

    def share_with(self, identity: Route, offer: Any) -> bool:
        """Whether a client's offer of shared memory holds: its segment is of our user, and
        nobody else's to read, and holds the token it sent."""
        old = self.peers.pop(identity, None)
        if old is not None:
            old.close()
        if not self.shares or not isinstance(offer, dict) or identity not in self.own_user:
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
            self.peers[identity] = Peer(token, segment, self.shared_room_left)
        except (ValueError, TypeError) as error:
            log.debug("client %s offered shared memory that fails: %s", identity[-1].hex(), error)
            return False
        return True

    @staticmethod
    def same_user(frame: zmq.Frame) -> bool:
        """Whether the OS says the client on the local socket runs as this server's user:
        libzmq appends the peer's uid, gid and pid (SO_PEERCRED) to an ipc peer's address.
        Where the OS does not say, only the socket's 0700 folder lets a client in."""
        try:
            fields = frame.get("Peer-Address").split(":")
        except (zmq.ZMQError, AttributeError):
            return True
        if len(fields) < 4 or not fields[-3].isdigit():
            return True
        return int(fields[-3]) == os.getuid()

    def on_release(self, identity: Route, message: Message) -> None:
        peer = self.peers.get(identity)
        if peer is not None:
            peer.release(message.content.get("name"), message.content.get("offset"))

    def on_generate(self, identity: Route, message: Message) -> None:
        content = message.content
        side = self.settings.max_side
        peer = self.peers.get(identity)
        memory = None if peer is None else peer.read
        canvas = read_image(content, "canvas", message.buffers, side, shared=memory)
        if canvas is None:
            raise ProtocolError("bad_message", "A generate message needs a canvas.")
        target = read_image(content, "target", message.buffers, side, shared=memory)
        mask = read_image(content, "mask", message.buffers, side, ("gray8",), memory)
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
        engine.settings(request)
        self.check_room(identity, request)
        job_id = uuid.uuid4().hex[:16]
        name = content.get("name", "")
        meta = content.get("meta", {})
        if not isinstance(meta, dict) or len(msgpack.packb(meta)) > MAX_META_BYTES:
            raise ProtocolError("bad_message", "The meta of a job must be a map under 4 KB.")
        job = Job(
            id=job_id,
            folder=self.jobs_dir() / job_id,
            name=name if isinstance(name, str) else "",
            meta=meta,
            engine=engine_name,
            steps=request.steps,
            width=canvas.shape[1],
            height=canvas.shape[0],
            request=request,
            subscribers={identity},
            owner=identity,
        )
        self.jobs[job_id] = job
        position = len(self.turns.waiting()) + sum(
            1 for j in self.jobs.values() if j.state == "running"
        )
        self.send(
            identity,
            Message(
                "accepted",
                {"position": position, "steps": job.steps, "state": job.state},
                re=message.id,
                job=job_id,
            ),
        )
        log.info(
            "job %s: %s, %d steps, %dx%d", job_id, engine_name, job.steps, *canvas.shape[1::-1]
        )
        self.turns.put(identity, job)

    def check_room(self, identity: Route, request: PaintRequest) -> None:
        """Refuse, as `busy` with the reason, a job that would make the server hold too much."""
        waiting = self.turns.waiting()
        own = [j for j in self.jobs.values() if j.owner == identity and not j.ended]
        held = sum(request_bytes(job.request) for job in waiting)
        own_held = sum(request_bytes(job.request) for job in own)
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

    def shared_room_left(self) -> int:
        rings = (peer.ring for peer in self.peers.values())
        return MAX_SHARED_BYTES - sum(ring.segment.size for ring in rings if ring is not None)

    def job_of(self, message: Message) -> Job:
        job = self.jobs.get(message.job or "")
        if job is None:
            raise ProtocolError(
                "unknown_job",
                f"There is no job {message.job!r} on this server; list the jobs to see which "
                "there are.",
            )
        return job

    def on_cancel(self, identity: Route, message: Message) -> None:
        job = self.job_of(message)
        job.subscribers.add(identity)
        if job.ended:
            self.send(identity, self.done_message(job, re=message.id))
            return
        job.cancel.set()
        log.info("job %s: cancel asked", job.id)

    def on_list_jobs(self, identity: Route, message: Message) -> None:
        listed = sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)
        content = {"jobs": [j.summary() for j in listed]}
        self.send(identity, Message("jobs", content, re=message.id))

    def on_fetch_job(self, identity: Route, message: Message) -> None:
        """Read the job's steps so far from the cache on a fetcher thread (a large job takes
        seconds: this thread must go on answering); what the job says meanwhile waits for the
        fetch, so the client gets every step once and in order."""
        job = self.job_of(message)
        job.subscribers.discard(identity)
        fetch = Fetch(
            job=job,
            route=identity,
            re=message.id,
            state={"position": 0, "steps": job.steps, "state": job.state},
            upto=job.steps_done,
            recent=dict(job.recent),
            request=job.request,
            done=self.done_message(job) if job.ended else None,
        )
        job.fetching[identity] = []
        self.fetches.put(fetch)

    def read_fetches(self) -> None:
        events = self.context.socket(zmq.PUSH)
        events.setsockopt(zmq.SNDHWM, 4)  # a few steps read ahead, not the whole job
        events.connect(EVENTS)
        try:
            while (fetch := self.fetches.get()) is not None:
                self.read_fetch(fetch, events)
        finally:
            events.close(linger=1000)

    def read_fetch(self, fetch: Fetch, events: zmq.Socket) -> None:
        job = fetch.job

        def send(message: Message | list[Any]) -> None:
            frames = encode(message) if isinstance(message, Message) else message
            route = msgpack.packb({"route": list(fetch.route)})
            events.send_multipart([b"send", job.id.encode(), route, *frames], copy=False)

        try:
            buffers: list[Any] = []
            result = None
            if (job.folder / "manifest.json").exists():
                result = load_result(job.folder)
                fetch.state["start"] = image_field(result.start(), buffers)
            elif fetch.request is not None:
                fetch.state["start"] = image_field(fetch.request.first_frame(), buffers)
            send(Message("accepted", fetch.state, buffers, re=fetch.re, job=job.id))
            for index in range(1, fetch.upto + 1):
                if index in fetch.recent:
                    send(fetch.recent[index])
                elif result is not None:
                    step = result.layer(index)
                    step = StepLayer(index, step.x, step.y, step.pixels, result.thumbnail(index))
                    send(self.step_message(job, step))
            if fetch.done is not None:
                send(fetch.done)
        except (PaintError, OSError) as error:  # deleted meanwhile, or the cache is damaged
            log.warning("job %s: cannot read it for a fetch: %s", job.id, error)
            text = f"Job {job.id} cannot be read from the server's cache ({error})."
            send(Message("error", {"code": "unknown_job", "message": text}, re=fetch.re))
        finally:
            route = msgpack.packb({"route": list(fetch.route)})
            events.send_multipart([b"fetched", job.id.encode(), route])

    def fetched(self, job: Job, identity: Route) -> None:
        """A fetch is sent: then what the job said meanwhile, and its live steps from now on."""
        for frames in job.fetching.pop(identity, []):
            self.deliver(identity, frames)
        if not job.ended and identity in self.seen:
            job.subscribers.add(identity)

    def on_delete_job(self, identity: Route, message: Message) -> None:
        job = self.job_of(message)
        job.cancel.set()
        job.subscribers.clear()
        if job.ended:
            self.remove(job)
        else:
            job.deleting = True
        self.send(identity, Message("deleted", {}, re=message.id, job=job.id))

    def deliver(self, identity: Route, frames: list[Any]) -> None:
        """Send an encoded message to a client; a step's large layer through shared memory
        where that client shares it and there is room."""
        peer = self.peers.get(identity)
        if peer is not None and len(frames) > 1 and len(frames[1]) >= shared.SMALLEST:
            header = msgpack.unpackb(frames[0], raw=False)
            layer = header.get("content", {}).get("layer")
            if header.get("type") == "step" and layer and layer.get("buffer") == 0:
                place = peer.place(frames[1])
                if place is not None:
                    layer.pop("buffer")
                    layer["shared"] = place
                    frames = [msgpack.packb(header, use_bin_type=True), b"", *frames[2:]]
        try:
            self.router.send_multipart([*identity, *frames], copy=False)
        except zmq.ZMQError as error:  # a full queue to a client that stopped reading
            log.debug("could not send to %s: %s", identity[-1].hex(), error)

    def step_message(self, job: Job, step: StepLayer) -> Message:
        buffers: list[Any] = []
        content = {
            "index": step.index,
            "steps": job.steps,
            "x": step.x,
            "y": step.y,
            "layer": image_field(step.pixels, buffers),
            "thumbnail": image_field(step.thumbnail, buffers),
        }
        return Message("step", content, buffers, job=job.id)

    def done_message(self, job: Job, re: str | None = None) -> Message:
        content = {"state": job.state, "steps": job.steps_done}
        return Message("done", content, re=re, job=job.id)

    # -- the workers --------------------------------------------------------------------------

    def forward_events(self) -> None:
        """Pass what workers report to the job's clients, keeping the job's record."""
        while True:
            try:
                frames = self.events.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            kind, job_id = frames[0].bytes, frames[1].bytes.decode()
            job = self.jobs.get(job_id)
            update = msgpack.unpackb(frames[2].bytes)
            if kind in (b"send", b"fetched"):  # from a fetcher
                route = tuple(update["route"])
                if kind == b"send":
                    self.deliver(route, [frame.buffer for frame in frames[3:]])
                elif job is not None:
                    self.fetched(job, route)
                continue
            if job is None:
                continue
            job.state = update.get("state", job.state)
            payload = [frame.buffer for frame in frames[3:]]
            if "steps_done" in update:
                job.steps_done = update["steps_done"]
                job.recent[job.steps_done] = payload  # until it is on disk, for fetch_job
            if "stored" in update:
                job.stored = update["stored"]
                for index in [k for k in job.recent if k <= job.stored]:
                    del job.recent[index]
            if payload:  # "stored" carries no message
                for identity in list(job.subscribers):
                    self.deliver(identity, payload)
                for waiting in job.fetching.values():
                    waiting.append(payload)
            if job.ended and job.deleting:
                self.remove(job)
            elif job.ended:
                job.subscribers.clear()
                job.request = None
                job.recent.clear()
                self.prune()

    def work(self, takes: Callable[[Job], bool] = lambda job: True) -> None:
        events = self.context.socket(zmq.PUSH)
        events.connect(EVENTS)
        try:
            while (job := self.turns.get(takes)) is not None:
                self.paint(job, events)
        finally:
            events.close(linger=1000)

    def paint(self, job: Job, events: zmq.Socket) -> None:
        """Run one job's engine, writing its steps to the cache and reporting each."""

        def report(kind: str, update: dict[str, Any], message: Message | None = None) -> None:
            frames = encode(message) if message is not None else []
            events.send_multipart(
                [kind.encode(), job.id.encode(), msgpack.packb(update), *frames], copy=False
            )

        request = job.request
        if request is None:
            return
        if job.cancel.is_set():
            state = "cancelled"
            report(
                "done", {"state": state}, Message("done", {"state": state, "steps": 0}, job=job.id)
            )
            return
        report(
            "state",
            {"state": "running"},
            Message("progress", {"done": 0.0, "stage": "planning"}, job=job.id),
        )
        info = {
            "engine": job.engine,
            "seed": request.seed,
            "steps_planned": request.steps,
            "name": job.name,
            "meta": job.meta,
            "created": job.created,
        }
        if request.prompt:
            info["prompt"] = request.prompt
        if request.options:
            info["options"] = dict(request.options)
        writer = ResultWriter(job.folder, request.first_frame(), info, lean=True)
        done = 0
        try:
            engine = get_engine(job.engine)

            reached = [0.0]  # progress only goes forward, whoever reports it

            def progress(share: float, stage: str) -> None:
                reached[0] = max(reached[0], share)
                update = {"done": round(reached[0], 4), "stage": stage}
                report("progress", {}, Message("progress", update, job=job.id))

            for step in engine.paint(request, job.cancel, progress):
                done = step.index
                # Clients get the step first; the cache has it a moment later.
                report("step", {"steps_done": done}, self.step_message(job, step))
                writer.add(step)
                report("stored", {"stored": done})
                progress(done / request.steps, "painting")
            state = "cancelled" if job.cancel.is_set() and done < request.steps else "finished"
            if state == "finished":
                writer.finish()
            else:
                writer.end(state)
            log.info("job %s: %s after %d steps", job.id, state, done)
            report(
                "done",
                {"state": state},
                Message("done", {"state": state, "steps": done}, job=job.id),
            )
        except PaintError as error:
            writer.end("failed", str(error))
            error_message = Message(
                "error", {"code": "bad_request", "message": str(error)}, job=job.id
            )
            report("done", {"state": "failed"}, error_message)
        except Exception as error:
            log.exception("job %s failed", job.id)
            writer.end("failed", f"The engine failed: {error}")
            text = f"The {job.engine} engine failed ({error}); see the server's log."
            report(
                "done",
                {"state": "failed"},
                Message("error", {"code": "engine_failed", "message": text}, job=job.id),
            )


@dataclass
class Fetch:
    """A fetch_job to read from the cache: what the job had when it was asked."""

    job: Job
    route: Route
    re: str
    state: dict[str, Any]
    upto: int  # steps sent by then
    recent: dict[int, list[Any]]  # those of them not yet stored
    request: PaintRequest | None
    done: Message | None  # where the job had ended


def watch_parent(pid: int, stop, every: float = 1.0) -> threading.Thread:
    """Call `stop` once process `pid` has ended: a server that Krita started must not outlive
    a Krita that crashed (a Krita that quits stops it itself)."""

    def watch() -> None:
        while shared.process_alive(pid):
            time.sleep(every)
        log.info("process %d, which started this server, has ended: stopping", pid)
        stop()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def setup_logging(verbose: bool) -> Path:
    folder = paths.log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    logfile = folder / "server.log"
    root = logging.getLogger("paintstep")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in (logging.FileHandler(logfile), logging.StreamHandler()):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return logfile

"""`paintstep serve`: the ZeroMQ server that paints for the Krita docker and other clients.

One thread owns the ROUTER socket and answers every message at once; engines run in worker
threads and hand their events back to it, so the server keeps answering while they paint.
Every job is written to a lean result folder in the cache as it goes, so any client can fetch
it again, and a restarted server still lists it.

    __init__.py  Server: the sockets, the loop, heartbeats, sending; setting up and shutting down
    handlers.py  what the server answers to each message type
    jobs.py      Job, JobStore (the jobs in the cache), Turns (the jobs waiting, client by client)
    peers.py     shared memory with clients on this machine
    worker.py    the threads that paint and those that read fetched jobs, and their events
    parking.py   waiting jobs' pictures on disk
    tcp.py       the gateway process that serves the TCP address
    settings.py  ServerSettings: what the server can be told, and the defaults
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path

import zmq

from .. import __version__, engines
from ..process import PaintError
from ..wire import paths, shared
from ..wire.protocol import (
    HEARTBEAT_SECONDS,
    MISSED_HEARTBEATS,
    Message,
    ProtocolError,
    decode,
    encode,
    is_loopback,
    local_address,
    new_id,
    private_dir,
)
from .gateway import FULL, cannot_listen, curve_server, router_socket
from .handlers import Handlers
from .jobs import Job, JobStore, Route, Turns
from .parking import Parking, discard
from .peers import Peers
from .settings import ServerSettings
from .tcp import Gateway
from .worker import FETCHERS, Events, Fetch, FetchEvent, JobEvent, is_small, read_fetches, work

__all__ = ["Server", "ServerSettings", "setup_logging", "watch_parent"]

log = logging.getLogger("paintstep.serve")

FORGOTTEN = (
    "The server does not know this connection (it was silent too long, it did not read what it "
    "was sent, or the server's TCP side restarted); say hello again and fetch your jobs."
)


class Server:
    """Serves `settings.address` until `stop()`: `run()` is the main thread's loop, which
    alone touches the sockets and the jobs' records; the workers and fetchers it starts
    report back through `events`."""

    def __init__(self, settings: ServerSettings, context: zmq.Context | None = None) -> None:
        self.settings = settings
        engines.configure(settings.engine_settings())
        self.context = context or zmq.Context()
        self.seen: dict[Route, float] = {}  # client -> when it last spoke
        # Shared memory only with clients on the local socket, which only this user reaches.
        self.local = local_address(settings.address) if zmq.has("ipc") else None
        self.peers = Peers(enabled=self.local is not None)
        self.server_id = load_server_id(settings.cache)
        self.stopping = threading.Event()
        self.authenticator = None
        self.gateway: Gateway | None = None
        self.router = self.bind()
        self.events = Events()
        self.store = JobStore(settings.cache / "jobs", settings.cache_days, settings.cache_bytes)
        self.store.load()
        self.store.prune()
        self.turns = Turns()
        self.fetches: queue.Queue[Fetch | None] = queue.Queue()
        self.parking = Parking(settings.cache / "queued")
        self.handlers = Handlers(
            settings,
            self.server_id,
            self.store,
            self.turns,
            self.peers,
            self.fetches,
            self.send,
            self.parking,
        )
        self.workers = [
            threading.Thread(
                target=work, args=(self.turns, self.events), name=f"paintstep-worker-{i}"
            )
            for i in range(settings.workers)
        ]
        # Small jobs have a lane of their own: a 4096 px job makes nobody wait half a minute.
        self.workers.append(
            threading.Thread(
                target=work, args=(self.turns, self.events, is_small), name="paintstep-small"
            )
        )
        self.workers += [
            threading.Thread(
                target=read_fetches, args=(self.fetches, self.events), name=f"paintstep-fetch-{i}"
            )
            for i in range(FETCHERS)
        ]
        for thread in self.workers:
            thread.daemon = True

    # -- setting up ---------------------------------------------------------------------------

    def bind(self) -> zmq.Socket:
        """The socket this process reads: the local one, with the TCP address served by the
        gateway process; where there are no ipc sockets, the TCP address itself."""
        settings = self.settings
        if not is_loopback(settings.address) and settings.keys is None:
            raise PaintError(
                f"Listening on {settings.address} lets other machines in, so it needs keys: "
                "run `paintstep keys` to make them, then start the server with --keys, or "
                "listen on 127.0.0.1 only."
            )
        router = router_socket(self.context, settings.max_message_bytes)
        if self.local is None:
            log.warning("no ipc sockets here: any client can stop this server (issue 14)")
            if settings.keys is not None:
                self.authenticator, _ = curve_server(self.context, router, settings.keys)
            address = settings.address
        else:
            self.gateway = Gateway(
                settings.address, self.local, settings.max_message_bytes, settings.keys
            )
            self.gateway.start(wait=True)  # fails first where another server has the port
            folder = os.path.dirname(self.local.removeprefix("ipc://"))
            os.makedirs(folder, mode=0o700, exist_ok=True)
            if not private_dir(folder):
                router.close()
                self.gateway.stop()
                raise PaintError(
                    f"{folder} can be entered by other users or is not yours; remove it (or "
                    "set XDG_RUNTIME_DIR to a folder of your own) and start the server again."
                )
            address = self.local
        try:
            router.bind(address)
        except zmq.ZMQError as error:
            router.close()
            if self.gateway is not None:
                self.gateway.stop()
            raise cannot_listen(address, error) from None
        return router

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stop() is called."""
        for thread in self.workers:
            thread.start()
        self.parking.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events.fileno(), zmq.POLLIN)  # answered by its number
        log.info("Paintstep %s serving on %s", __version__, self.settings.address)
        next_beat = time.monotonic()
        try:
            while not self.stopping.is_set():
                ready = dict(poller.poll(timeout=int(HEARTBEAT_SECONDS * 250)))
                if self.events.fileno() in ready:
                    self.forward_events()
                if self.router in ready:
                    self.receive()
                if time.monotonic() >= next_beat:
                    self.heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                if self.gateway is not None:
                    gone = self.gateway.restart_if_dead()
                    if gone is not None:  # its clients say hello again when they hear of it
                        self.forget([route for route in self.seen if route[0] == gone])
        finally:
            self.shutdown()

    def stop(self) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        for job in self.store:
            job.cancel.set()
        self.turns.close()
        for _ in range(FETCHERS):
            self.fetches.put(None)
        for thread in self.workers:
            deadline = time.monotonic() + 5
            while thread.is_alive() and time.monotonic() < deadline:
                self.forward_events()  # a fetcher may wait for its messages to be sent
                thread.join(timeout=0.05)
        self.forward_events()
        self.parking.stop()
        if self.gateway is not None:
            self.gateway.stop()
        self.router.close(linger=0)
        self.events.close()
        self.peers.close()
        if self.authenticator is not None:
            self.authenticator.stop()
        log.info("stopped")

    def receive(self) -> None:
        gateway_id = self.gateway.id if self.gateway is not None else None
        for _ in range(100):  # a burst at a time, so worker events are never starved
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            hops = 2 if frames[0].bytes == gateway_id and len(frames) > 2 else 1
            if hops == 2 and len(frames) == 3 and frames[1].bytes == FULL:
                self.overflowed((gateway_id, frames[2].bytes))
                continue
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
                self.send_error(identity, "unknown_client", FORGOTTEN)
                continue
            if message.type == "hello":
                self.peers.hello(identity, frames[1] if hops == 1 else None)
            try:
                self.handlers.handle(identity, message)
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
        """Send a message to a client; a step's large layer through shared memory where that
        client shares it and there is room."""
        if identity not in self.seen:  # forgotten: it hears nothing until it speaks again
            return
        if not message.id:
            message.id = new_id()  # one id, whichever clients get it
        peer = self.peers.get(identity)
        shared_layer = peer.with_shared_layer(message) if peer is not None else None
        frames = [*identity, *encode(shared_layer or message)]
        try:
            self.router.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:  # a full queue: a client that stopped reading
            self.overflowed(identity)
        except zmq.ZMQError as error:  # a client that is gone
            log.debug("could not send to %s: %s", identity[-1].hex(), error)

    def overflowed(self, route: Route) -> None:
        """A client whose queue is full lost a message: forget it, so that it hears
        `unknown_client` and fetches its jobs again, rather than go on with a hole."""
        if route not in self.seen:
            return
        log.info("client %s does not read what it is sent: forgotten", route[-1].hex())
        self.forget([route])
        tell_forgotten(self.router, route)

    def send_error(self, identity: Route, code: str, text: str, re=None, job=None) -> None:
        """An `error` of `code` saying `text`, in answer to message `re` (of `job`)."""
        self.send(identity, Message("error", {"code": code, "message": text}, re=re, job=job))

    def heartbeat(self) -> None:
        silence = HEARTBEAT_SECONDS * MISSED_HEARTBEATS
        now = time.monotonic()
        gone = [identity for identity, last in self.seen.items() if now - last > silence]
        self.forget(gone)
        for identity in gone:
            log.debug("client %s is gone", identity[-1].hex())
        for identity in list(self.seen):  # a send may forget one
            self.send(identity, Message("heartbeat"))

    def forget(self, routes: list[Route]) -> None:
        """Stop sending to these clients (their jobs go on, in the cache)."""
        for route in routes:
            self.seen.pop(route, None)
            self.peers.forget(route)
        for job in self.store:
            job.subscribers.difference_update(routes)
            for route in routes:  # a fetch under way is given up (fetch_stale)
                job.fetching.pop(route, None)

    # -- what the workers say -----------------------------------------------------------------

    def forward_events(self) -> None:
        """Pass what workers report to the job's clients, keeping the job's record."""
        for event in self.events.take():
            job = self.store.find(event.job)
            try:
                if isinstance(event, FetchEvent):
                    if job is not None and fetch_stale(job, event):
                        continue  # for a client forgotten since (it fetches again)
                    if event.message is not None:
                        self.send(event.route, event.message)
                    elif job is not None:
                        self.fetched(job, event.route)
                elif job is not None:
                    self.update(job, event)
            except Exception:  # one job's bad event must not stop the server
                log.exception("job %s: failed to pass on what its worker said", event.job)
            finally:
                if isinstance(event, FetchEvent) and event.sent is not None:
                    event.sent.release()

    def update(self, job: Job, event: JobEvent) -> None:
        if event.state is not None:
            job.state = event.state
        if event.steps_done is not None:
            job.steps_done = event.steps_done
            job.recent[job.steps_done] = event.message  # until it is on disk, for fetch_job
        if event.stored is not None:
            job.stored = event.stored
            for index in [k for k in job.recent if k <= job.stored]:
                del job.recent[index]
        if event.message is not None:
            for identity in list(job.subscribers):
                self.send(identity, event.message)
            for waiting in job.fetching.values():
                waiting.append(event.message)
        if job.ended and job.deleting:
            with job.lock:
                discard(job)
            self.store.remove(job)
        elif job.ended:
            job.subscribers.clear()
            with job.lock:
                job.request = None
                discard(job)
            job.recent.clear()
            self.store.prune()

    def fetched(self, job: Job, identity: Route) -> None:
        """A fetch is sent: then what the job said meanwhile, and its live steps from now on."""
        for message in job.fetching.pop(identity, []):
            self.send(identity, message)
        if not job.ended and identity in self.seen:
            job.subscribers.add(identity)


def load_server_id(cache: Path) -> str:
    """The server's id, the same for as long as its cache lives."""
    path = cache / "server-id"
    cache.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(uuid.uuid4().hex)
    return path.read_text().strip()


def tell_forgotten(router: zmq.Socket, route: Route) -> None:
    """Tell a client at once, after what is already on its way to it (which it gets whole, or
    not at all), that it is forgotten: the gateway passes this on, and nothing before it, once
    the client's queue has room. Where the queue is full here, it hears when it next speaks."""
    message = Message("error", {"code": "unknown_client", "message": FORGOTTEN}, id=new_id())
    try:
        router.send_multipart([*route, *encode(message)], zmq.NOBLOCK, copy=False)
    except zmq.ZMQError:
        pass


def fetch_stale(job: Job, event: FetchEvent) -> bool:
    """Whether the fetch `event` belongs to is no longer the one its client waits for."""
    fetch = event.fetch
    return fetch is not None and job.fetching.get(event.route) is not fetch.backlog


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

"""The server's TCP side, in a process of its own that the server restarts when it dies.

libzmq 4.3.5 aborts a ROUTER when a client takes, as its own routing id, the id the ROUTER
will give the next client that names none (router.cpp `identify_peer` never checks the id it
generates), and no option makes a ROUTER refuse the ids clients choose. So the socket that
anyone may reach lives here: a ROUTER on the TCP address (with CURVE where there are keys),
its first id drawn at random so that nobody can know it, passes every message, its sender's
routing id in front, to the server's local socket, and the answers back. Whoever aborts this
process all the same stops no job: the server starts it again within a second, and clients
say hello again and fetch their jobs (docs/protocol.md, "unknown_client").

    python -m paintstep.serve.gateway FRONT BACK GATEWAY_ID MAX_MESSAGE_BYTES PARENT_PID [KEYS]
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import zmq

from ..wire.errors import PaintError
from ..wire.shared import process_alive

READY = "ready"
# What the gateway tells the server, in place of a message, when a client reads too slowly:
# [FULL, the client's routing id]. The server forgets that client (docs/protocol.md, "Limits").
FULL = b"paintstep-gateway:full"
# Messages queued for one TCP client that is not reading; past them the client is dropped.
CLIENT_QUEUE = 8


def unpredictable_routing_ids() -> None:
    """Seed the C library's rand(), from which a new ROUTER draws the first routing id it
    hands out: libzmq never seeds it, so every ROUTER's first id is 00 6b8b4567, and a client
    that takes the next id as its own aborts the process when one more client connects."""
    try:
        libc = ctypes.CDLL(None)
        libc.srand(ctypes.c_uint(int.from_bytes(os.urandom(4), "little")))
    except (OSError, AttributeError, TypeError):  # no C library to reach (Windows): as it was
        pass


def router_socket(context: zmq.Context, max_message_bytes: int, queue: int = 256) -> zmq.Socket:
    """A ROUTER for clients, as the server's local socket and the gateway's TCP one are: at
    most `queue` messages wait for one peer, and a send to a peer whose queue is full fails
    (zmq.Again with NOBLOCK) instead of being dropped unseen."""
    unpredictable_routing_ids()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    router.setsockopt(zmq.SNDHWM, queue)
    router.setsockopt(zmq.RCVHWM, 64)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    return router


def curve_server(context: zmq.Context, router: zmq.Socket, keys: Path) -> tuple[Any, Path]:
    """Make `router` a CURVE server with the keys in `keys`, admitting only the clients whose
    public keys are in its `clients/`: the authenticator that does so, and that folder."""
    from zmq.auth.thread import ThreadAuthenticator

    from ..wire.keys import load_server_keys

    public, secret, clients = load_server_keys(keys)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(clients))
    router.curve_secretkey = secret
    router.curve_publickey = public
    router.curve_server = True
    return authenticator, clients


def cannot_listen(address: str, error: zmq.ZMQError) -> PaintError:
    return PaintError(
        f"Cannot listen on {address} ({error.strerror}); another server may be running there: "
        "stop it or choose another --port."
    )


def serve(
    front: str,
    back: str,
    gateway_id: bytes,
    max_message_bytes: int,
    keys: Path | None,
    reload: list[Callable[[], None]],
) -> None:
    """Listen on `front` and pass everything to `back`; puts into `reload` what reads the
    allowed client keys again."""
    context = zmq.Context()
    router = router_socket(context, max_message_bytes, CLIENT_QUEUE)
    if keys is not None:
        authenticator, clients = curve_server(context, router, keys)
        reload.append(lambda: authenticator.configure_curve(domain="*", location=str(clients)))
    for attempt in range(20):
        try:
            router.bind(front)
            break
        except zmq.ZMQError as error:
            # A gateway whose server was killed lets the port go within half a second.
            if error.errno != zmq.EADDRINUSE or attempt == 19:
                raise cannot_listen(front, error) from None
            time.sleep(0.1)
    server = context.socket(zmq.DEALER)
    server.setsockopt(zmq.LINGER, 0)
    server.setsockopt(zmq.ROUTING_ID, gateway_id)
    server.setsockopt(zmq.SNDHWM, 4096)
    server.setsockopt(zmq.RCVHWM, 4096)
    server.connect(back)
    print(READY, flush=True)
    relay(router, server)


def relay(router: zmq.Socket, server: zmq.Socket) -> None:
    """Pass clients' messages to the server and the server's to clients, for ever. A client
    whose queue is full loses that message and every later one, and the server hears of it
    (FULL) and forgets it, so that its stream never has a hole it cannot see: what reaches it
    next is the server's `unknown_client` (or its answer to a new hello), and it fetches its
    jobs again."""
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(server, zmq.POLLIN)
    dropped: set[bytes] = set()  # clients past their queue, until their next hello
    while True:
        ready = dict(poller.poll())
        for _ in range(100 if router in ready else 0):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            server.send_multipart(frames, copy=False)
        for _ in range(100 if server in ready else 0):
            try:
                frames = server.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            client = frames[0].bytes
            if client in dropped:  # until the server's word that it forgot that client
                content = header_of(frames).get("content")
                if not isinstance(content, dict) or content.get("code") != "unknown_client":
                    continue
                dropped.discard(client)
            try:
                router.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:  # it does not read: it holds no more of this process's memory
                dropped.add(client)
                server.send_multipart([FULL, client])
            except zmq.ZMQError:  # gone
                pass


def header_of(frames: list[zmq.Frame]) -> dict[str, Any]:
    """The header of a message the server sends a client: [client, header, buffers...]."""
    if len(frames) < 2 or len(frames[1]) > 65536:
        return {}
    try:
        header = msgpack.unpackb(frames[1].bytes)
    except Exception:
        return {}
    return header if isinstance(header, dict) else {}


def main(argv: list[str]) -> int:
    front, back, gateway_id, max_bytes, parent = argv[:5]
    keys = Path(argv[5]) if len(argv) > 5 else None

    reload: list[Callable[[], None]] = []

    def run() -> None:
        try:
            serve(front, back, gateway_id.encode(), int(max_bytes), keys, reload)
        except (PaintError, zmq.ZMQError) as error:
            print(error, file=sys.stderr, flush=True)
        finally:
            stopped.set()

    stopped = threading.Event()
    threading.Thread(target=run, name="paintstep-gateway", daemon=True).start()
    # The proxy never returns: end with the server that started this process. A client key
    # taken out of (or put into) the folder counts from the next connection on.
    allowed = None
    while not stopped.wait(0.5):
        if not process_alive(int(parent)):
            return 0
        if keys is not None and reload:
            now = sorted((f.name, f.stat().st_mtime_ns) for f in (keys / "clients").glob("*"))
            if allowed is not None and now != allowed:
                reload[0]()
            allowed = now
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

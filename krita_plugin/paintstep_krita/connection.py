"""The link to `paintstep serve`, on a thread of its own so that Krita's UI never waits on it.

The thread owns the client (ZeroMQ sockets stay on the thread that made them); commands go in
through a queue, and what happens comes out as Qt signals, which Qt delivers on the UI thread.
"""

from __future__ import annotations

import queue
import threading

from .pixels import swap_red_blue
from .qt import QtCore, Signal
from .vendor import client_module


class Connection(QtCore.QObject):
    """Events: `event` carries the client's Accepted, Progress, Step and Done; `status` carries
    (state, sentence) with state "connected", "offline" or "error"."""

    event = Signal(object)
    status = Signal(str, str)
    welcomed = Signal(object)
    jobs = Signal(object)

    def __init__(self, address: str, keys: str = "", parent=None) -> None:
        super().__init__(parent)
        self.address = address
        self.keys = keys  # a folder with server.key and client.key_secret, for a remote server
        self.commands: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.prepared: dict = {}  # (job, step) -> the step's pixels in Krita's byte order
        self.thread = threading.Thread(target=self.run, name="paintstep-connection", daemon=True)
        self.thread.start()

    # -- from the UI thread -------------------------------------------------------------------

    def connect_server(self) -> None:
        self.commands.put(("connect", None))

    def generate(self, **job) -> None:
        self.cancelled.clear()
        self.commands.put(("generate", job))

    def list_jobs(self) -> None:
        self.commands.put(("list", None))

    def fetch(self, job: str) -> None:
        self.cancelled.clear()
        self.commands.put(("fetch", job))

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        self.commands.put(None)

    # -- on the connection's thread -----------------------------------------------------------

    def run(self) -> None:
        client_api = client_module()
        client = None
        while True:
            command = self.commands.get()
            if command is None:
                break
            kind, job = command
            try:
                if client is None:
                    keys = None
                    if self.keys:
                        from pathlib import Path

                        from paintstep.wire.keys import load_client_keys

                        keys = load_client_keys(Path(self.keys))
                    client = client_api.Client(self.address, timeout=3, keys=keys)
                    self.welcomed.emit(client.connect())
                    self.status.emit("connected", f"Connected to {self.address}")
                if kind == "generate":
                    self.follow(client, client_api, client.generate(**job))
                elif kind == "fetch":
                    self.follow(client, client_api, client.fetch(job))
                elif kind == "list":
                    self.jobs.emit(client.list_jobs())
            except client_api.ServerLost as error:
                self.status.emit("offline", str(error))
                if client is not None:
                    client.close()
                client = None
            except client_api.ServerError as error:
                self.status.emit("error", str(error))
            except ValueError as error:  # PaintError: missing or unreadable keys
                self.status.emit("error", str(error))
            except Exception as error:  # the thread must live on: say it, start afresh
                self.status.emit(
                    "offline",
                    f"Cannot talk to the server at {self.address} ({error}); check the address "
                    "(such as tcp://127.0.0.1:5571) in the docker's settings.",
                )
                if client is not None:
                    client.close()
                client = None
        if client is not None:
            client.close()

    def follow(self, client, client_api, events) -> None:
        current = None
        for event in events:
            if isinstance(event, client_api.Accepted):
                current = event.job
            if self.cancelled.is_set() and current is not None:
                client.cancel(current)
                self.cancelled.clear()
            if isinstance(event, client_api.Step):
                # Krita's byte order, worked out here rather than on the UI thread at apply.
                self.prepared[(event.job, event.index)] = swap_red_blue(bytes(event.layer.data))
            self.event.emit(event)

"""The server's TCP side: the gateway process (`paintstep.serve.gateway`) that serves the TCP
address and passes every message to the server's local socket, started again when it dies."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ..wire.errors import PaintError

log = logging.getLogger("paintstep.serve")


class Gateway:
    """The gateway process for `address`, passing to the local socket `local`."""

    def __init__(self, address: str, local: str, max_message_bytes: int, keys: Path | None):
        self.address = address
        self.local = local
        self.max_message_bytes = max_message_bytes
        self.keys = keys
        self.process: subprocess.Popen | None = None
        self.id = b""  # its routing id on the local socket
        self.started = 0.0

    def start(self, wait: bool) -> None:
        """Start the process; with `wait`, until it listens, raising PaintError when it
        cannot."""
        self.id = b"gateway-" + os.urandom(8).hex().encode()
        command = [sys.executable, "-m", "paintstep.serve.gateway", self.address, self.local]
        command += [self.id.decode(), str(self.max_message_bytes), str(os.getpid())]
        if self.keys is not None:
            command.append(str(self.keys))
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if wait else subprocess.DEVNULL,
            stderr=subprocess.PIPE if wait else None,
            text=True,
        )
        if not wait:
            return
        line = self.process.stdout.readline().strip()
        if line != "ready":
            error = self.process.stderr.read().strip() or "the gateway did not start"
            self.process.wait()
            self.process = None
            raise PaintError(error)
        self.process.stdout.close()
        self.process.stderr.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def restart_if_dead(self) -> bytes | None:
        """Start the gateway again when it died (a client can make libzmq abort it); the
        routing id it had, whose clients are gone, or None while it lives."""
        if self.process is None or self.process.poll() is None:
            return None
        if time.monotonic() - self.started < 1.0:
            return None  # dying at once (the port taken?): once a second at most
        log.warning("the TCP gateway stopped (exit %s); starting it again", self.process.returncode)
        old = self.id
        self.start(wait=False)
        return old

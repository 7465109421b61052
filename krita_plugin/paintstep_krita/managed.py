"""The server the docker starts itself when none answers on this machine (a managed server).

It is the `paintstep` command install.py set up (or PAINTSTEP_SERVE_COMMAND), started on the
port of the docker's loopback address, and stopped when Krita quits.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from urllib.parse import urlsplit

from .vendor import client_module


def command() -> list[str] | None:
    """How to run `paintstep`, or None when Paintstep's server is not installed here."""
    given = os.environ.get("PAINTSTEP_SERVE_COMMAND")
    if given:
        return shlex.split(given)
    client_module()  # puts the vendored paintstep package on the path
    from paintstep.wire import paths

    installed = paths.installed_command()
    return [str(installed)] if installed.exists() else None


def local_port(address: str) -> int | None:
    """The port of a loopback TCP address, or None for any other address."""
    parts = urlsplit(address)
    if parts.scheme == "tcp" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return parts.port
    return None


class ManagedServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, address: str) -> str:
        """Start a server for `address`; returns a sentence for the docker to show."""
        port = local_port(address)
        if port is None:
            return f"No server answers at {address}; start `paintstep serve` there."
        run = command()
        if run is None:
            return (
                "No Paintstep server runs on this machine and none is installed; run "
                "`python3 install.py` from Paintstep's folder, or start `paintstep serve`."
            )
        self.process = subprocess.Popen(
            # --parent-pid: should Krita crash (and not stop it), the server stops by itself.
            [*run, "serve", "--port", str(port), "--parent-pid", str(os.getpid())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Krita is a window program: no console window for the server on Windows.
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
        return f"Starting the Paintstep server on port {port}..."

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

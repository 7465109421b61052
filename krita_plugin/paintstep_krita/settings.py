"""The plugin's settings, typed, over kritarc's `[paintstep]` section (read through app.py).

PAINTSTEP_SERVER and PAINTSTEP_KEYS override the server's address and keys for a session (the
tests use them); what the artist typed stays stored. Neither Qt nor Krita here: the docker
gives the reads and writes (app.py's).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .vendor import protocol_module


class PluginSettings:
    def __init__(
        self, read: Callable[[str, str], str], write: Callable[[str, object], None]
    ) -> None:
        self.read, self.write = read, write

    def text(self, name: str, default: str = "") -> str:
        return self.read(name, default)

    def number(self, name: str, default: int) -> int:
        """A whole number; a stored value that is none (kritarc edited by hand) gives `default`."""
        try:
            return int(self.read(name, str(default)))
        except ValueError:
            return default

    def store(self, name: str, value: object) -> None:
        self.write(name, value)

    @property
    def address(self) -> str:
        """The server to connect to: PAINTSTEP_SERVER, else the stored one, else the default."""
        default = protocol_module().DEFAULT_ADDRESS
        return os.environ.get("PAINTSTEP_SERVER") or self.text("server") or default

    @property
    def keys(self) -> str:
        """CURVE keys for a server on another machine (see `paintstep keys`), or ""."""
        return os.environ.get("PAINTSTEP_KEYS") or self.text("keys")

    def keep_server(self, address: str, keys: str) -> None:
        self.store("server", address)
        self.store("keys", keys)

    @property
    def engine(self) -> str:
        return self.text("engine", "strokes")

    @engine.setter
    def engine(self, name: str) -> None:
        self.store("engine", name)

    @property
    def prompt(self) -> str:
        return self.text("prompt")

    @prompt.setter
    def prompt(self, text: str) -> None:
        self.store("prompt", text)

    @property
    def steps(self) -> int:
        return self.number("steps", 16)

    @steps.setter
    def steps(self, count: int) -> None:
        self.store("steps", count)

    @property
    def seed(self) -> int:
        return self.number("seed", 0)

    @seed.setter
    def seed(self, seed: int) -> None:
        self.store("seed", seed)

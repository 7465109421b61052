"""What a client of `paintstep serve` hears of a job (Accepted, Progress, Step, Done) and the
errors it raises. No numpy (the Krita plugin carries this module); `Step.to_layer` needs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import RawImage


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
    stage: str | None = None  # the part of the process, when the engine names it

    def to_layer(self) -> Any:
        """As the library's StepLayer (needs numpy)."""
        from ..process import StepLayer

        pixels, small = self.layer.array(), self.thumbnail.array()
        return StepLayer(self.index, self.x, self.y, pixels, small, self.stage)


@dataclass(frozen=True)
class Done:
    job: str
    state: str  # finished or cancelled
    steps: int

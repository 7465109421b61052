"""What `paintstep serve` can be told."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..protocol import MAX_HEADER_BYTES


@dataclass
class Settings:
    address: str
    cache: Path
    max_side: int = 8192
    workers: int = 1
    cache_days: float = 30.0
    cache_bytes: int = 5 * 1024**3
    keys: Path | None = None  # folder made by `paintstep keys`

    @property
    def max_message_bytes(self) -> int:
        """The largest message taken: a header, a canvas and a target, and a mask."""
        side = self.max_side
        return MAX_HEADER_BYTES + 2 * side * side * 4 + side * side

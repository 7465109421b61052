"""The engine interface and the registry of engines.

An engine turns a PaintRequest into step layers, yielded one at a time as they are ready. Engines
are imported only when chosen, so that heavy ones (torch) never slow down the default path.
"""

from __future__ import annotations

import importlib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from .process import PaintError, PaintRequest, StepLayer

DEFAULT_ENGINE = "strokes"

# name -> "module:Class", imported on first use
ENGINES: dict[str, str] = {
    "strokes": "paintstep.model.strokes:StrokesEngine",
}


@dataclass(frozen=True)
class EngineOption:
    """One engine setting: its name, type, default, bounds and a line of help."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, value: Any) -> Any:
        kind = "whole number" if self.kind is int else "number"
        try:
            parsed = self.kind(value)
            if not math.isfinite(parsed):
                raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            raise PaintError(f"The option {self.name} must be a {kind}, not {value!r}.") from None
        if self.minimum is not None and parsed < self.minimum:
            raise PaintError(f"The option {self.name} must be at least {self.minimum}.")
        if self.maximum is not None and parsed > self.maximum:
            raise PaintError(f"The option {self.name} must be at most {self.maximum}.")
        return parsed


class Engine(ABC):
    """Generates the steps of a painting process."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[EngineOption, ...]] = ()

    def settings(self, request: PaintRequest) -> dict[str, Any]:
        """The request's options, checked and completed with defaults."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(request.options) - set(known))
        if unknown:
            raise PaintError(
                f"The {self.name} engine has no option {', '.join(unknown)}; "
                f"its options are: {', '.join(known) or 'none'}."
            )
        return {
            name: option.parse(request.options[name]) if name in request.options else option.default
            for name, option in known.items()
        }

    @abstractmethod
    def paint(
        self, request: PaintRequest, cancel: threading.Event | None = None
    ) -> Iterator[StepLayer]:
        """Yield steps 1..N in order. Stops within one step once `cancel` is set."""


def engine_names() -> list[str]:
    return sorted(ENGINES)


def get_engine(name: str) -> Engine:
    """An instance of the engine called `name`."""
    if name not in ENGINES:
        raise PaintError(
            f"There is no engine called {name!r}; choose one of: {', '.join(engine_names())}."
        )
    module_name, class_name = ENGINES[name].split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class()

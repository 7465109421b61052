"""The engine interface and the registry of engines.

An engine turns a PaintRequest into step layers, yielded one at a time as they are ready. Engines
are imported only when chosen, so that heavy ones (torch) never slow down the default path.
"""

from __future__ import annotations

import importlib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from .process import PaintError, PaintRequest, StepLayer

DEFAULT_ENGINE = "strokes"

# name -> "module:Class", imported on first use
ENGINES: dict[str, str] = {
    "strokes": "paintstep.model.strokes:StrokesEngine",
    "diffusion": "paintstep.model.diffusion:DiffusionEngine",
    "paints-undo": "paintstep.model.undo.engine:PaintsUndoEngine",
}
# Engines offered only where their weights are configured: name -> "module:function", which
# answers from the engine's settings (`configure`) without loading anything heavy.
LISTED_WHEN: dict[str, str] = {"paints-undo": "paintstep.model.undo.weights:configured"}

# Called by an engine while it works on a step: (share of the whole job done 0..1, stage).
Report = Callable[[float, str], None]


@dataclass(frozen=True)
class EngineOption:
    """One engine setting: its name, type, default, bounds and a line of help.

    A text option (kind str) may list its `choices`; an empty tuple means any short text."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> Any:
        if self.kind is str:
            return self.parse_text(value)
        kind = "whole number" if self.kind is int else "number"
        try:
            # true is not 1, nor 2.7 a whole number; text is a number written out (--option).
            fraction = isinstance(value, float) and not value.is_integer()
            if isinstance(value, bool) or (self.kind is int and fraction):
                raise ValueError(value)
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

    def parse_text(self, value: Any) -> str:
        if not isinstance(value, str) or len(value) > 200:
            raise PaintError(f"The option {self.name} must be a short text, not {value!r}.")
        if self.choices and value not in self.choices:
            raise PaintError(
                f"The option {self.name} must be one of {', '.join(self.choices)}, not {value!r}."
            )
        return value


class Engine(ABC):
    """Generates the steps of a painting process."""

    name: ClassVar[str]
    description: ClassVar[str]
    options: ClassVar[tuple[EngineOption, ...]] = ()
    takes_prompt: ClassVar[bool] = False  # reads the request's prompt
    invents: ClassVar[bool] = False  # can complete a canvas with no target

    def unavailable(self) -> str | None:
        """Why this engine cannot run here (a sentence saying what to install), or None."""
        return None

    def settings(self, request: PaintRequest) -> dict[str, Any]:
        """The request's options, checked and completed with defaults."""
        why = self.unavailable()
        if why:
            raise PaintError(why)
        if request.complete and not self.invents:
            raise PaintError(
                f"The {self.name} engine cannot invent what is not painted yet: give a target "
                "to paint towards, or choose an engine that completes (diffusion)."
            )
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
        self,
        request: PaintRequest,
        cancel: threading.Event | None = None,
        report: Report | None = None,
    ) -> Iterator[StepLayer]:
        """Yield steps 1..N in order. Stops within one step once `cancel` is set. `report`,
        when given, hears how far the work has come between steps (engines whose first step
        takes long use it)."""

    def describe(self) -> dict[str, Any]:
        """What a client needs to offer this engine: the `engines` entry of `welcome`."""
        options = [
            {
                "name": o.name,
                "type": o.kind.__name__,
                "default": o.default,
                "minimum": o.minimum,
                "maximum": o.maximum,
                "choices": list(o.choices),
                "help": o.help,
            }
            for o in self.options
        ]
        return {
            "name": self.name,
            "description": self.description,
            "options": options,
            "prompt": self.takes_prompt,
            "invents": self.invents,
            "unavailable": self.unavailable(),
        }


def engine_names(every: bool = False) -> list[str]:
    """The names of the engines offered here, the default first (clients offer it first);
    `every`: also those whose weights are not configured (they say what is missing)."""
    names = sorted(name for name in set(ENGINES) - {DEFAULT_ENGINE} if every or listed(name))
    return [DEFAULT_ENGINE] + names


def listed(name: str) -> bool:
    if name not in LISTED_WHEN:
        return True
    module_name, function_name = LISTED_WHEN[name].split(":")
    check = getattr(importlib.import_module(module_name), function_name)
    return bool(check(**CONFIGURED.get(name, {})))


# What engines are made with in this process: name -> keyword arguments (the server's settings,
# ServerSettings.engine_settings); an engine not named is made with none.
CONFIGURED: dict[str, dict[str, Any]] = {}


def configure(settings: dict[str, dict[str, Any]]) -> None:
    """Make every engine named in `settings` from now on with its keyword arguments."""
    CONFIGURED.update({name: dict(values) for name, values in settings.items()})


def get_engine(name: str) -> Engine:
    """An instance of the engine called `name`, made with what `configure` gave it."""
    if name not in ENGINES:
        raise PaintError(
            f"There is no engine called {name!r}; choose one of: {', '.join(engine_names())}."
        )
    module_name, class_name = ENGINES[name].split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(**CONFIGURED.get(name, {}))

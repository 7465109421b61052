"""The strokes engine's process styles other than the painterly one: whose process a request
asks for (the `style` option), and the module that paints it.

Each style paints over a strokes Painter (painter.py), which holds the canvas, the goal and
where it may paint, and deals its steps to its own stages (each step's `stage`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from paintstep.engines import EngineOption
from paintstep.process import StepLayer

from .illustration import paint_illustration
from .pencil import grey, paint_pencil
from .watercolour import paint_watercolour

# The painterly process (strokes.py) first and the default; then each style's painter.
PAINTERS = {
    "illustration": paint_illustration,
    "watercolour": paint_watercolour,
    "pencil": paint_pencil,
}
STYLES = ("paint", *PAINTERS)
STYLE_HELP = (
    "Whose process: paint (alla prima, large to small brushes), illustration "
    "(sketch, lines, flats, shading, details), watercolour (washes light to dark, "
    "details) or pencil (hatching, cross-hatching, colour, details)."
)
# The styles' own options, beside the engine's.
STYLE_OPTIONS = (
    EngineOption(
        "colour",
        str,
        "true",
        "The pencil style's: true draws colour where the picture has it after the graphite; "
        "false keeps the drawing in greys and ends on the picture in greys.",
        choices=("true", "false"),
    ),
)


def style_goal(goal: np.ndarray, settings) -> np.ndarray:
    """The picture a style ends on: the goal itself, or in greys for a pencil drawing that
    keeps no colour."""
    if settings.style == "pencil" and settings.colour == "false":
        return grey(goal)
    return goal


def paint_in_style(
    style: str, painter, radii: list[float], steps: int, seed: int, cancel: threading.Event
) -> Iterator[StepLayer]:
    """The steps of the style's process over the painter's canvas (not the painterly one)."""
    yield from PAINTERS[style](painter, radii, steps, seed, cancel)

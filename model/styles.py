"""The strokes engine's process styles other than the painterly one: whose process a request
asks for (the `style` option), and the module that paints it.

Each style paints over a strokes Painter (painter.py), which holds the canvas, the goal and
where it may paint, and deals its steps to its own stages (each step's `stage`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from paintstep.process import StepLayer

from .illustration import paint_illustration
from .watercolour import paint_watercolour

# The painterly process (strokes.py) first and the default; then each style's painter.
PAINTERS = {"illustration": paint_illustration, "watercolour": paint_watercolour}
STYLES = ("paint", *PAINTERS)
STYLE_HELP = (
    "Whose process: paint (alla prima, large to small brushes), illustration "
    "(sketch, lines, flats, shading, details) or watercolour (washes light to dark, "
    "details)."
)


def paint_in_style(
    style: str, painter, radii: list[float], steps: int, seed: int, cancel: threading.Event
) -> Iterator[StepLayer]:
    """The steps of the style's process over the painter's canvas (not the painterly one)."""
    yield from PAINTERS[style](painter, radii, steps, seed, cancel)

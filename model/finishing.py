"""The painterly engine's last stages, which every process style ends with: its detail brushes
and its finest brush with the glazes, over a strokes Painter (painter.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from paintstep.process import StepLayer

from .step_deal import split_by_progress
from .stroke_plan import DETAIL_RADIUS


def detail_steps(painter, radii: list[float], count: int, index: int) -> Iterator[StepLayer]:
    """`count` steps after step `index` of the painterly brushes from a sixteenth of the
    largest down to the finest but one, each a share of the steps (the larger ones first)."""
    sizes = [r for r in radii[:-1] if r <= max(radii[0] / 16, DETAIL_RADIUS)]
    sizes = sizes[-count:] if sizes else [radii[-1]]
    shares = np.array_split(np.arange(count), len(sizes))
    done = 0
    for radius, runs in zip(sizes, shares):
        plan = painter.plan(radius, finest=False, count=len(runs))
        bounds = split_by_progress(plan.amounts, len(runs), 0.5)
        for run in range(len(runs)):
            items = plan.items[bounds[run] : bounds[run + 1]]
            done += 1
            yield painter.paint(plan, items, index + done, last=False)


def finish_steps(painter, radii: list[float], count: int, index: int) -> Iterator[StepLayer]:
    """`count` steps after step `index` of the finest brush and the glazes; the last ends on
    the goal within the tolerance."""
    plan = painter.plan(radii[-1], finest=True, count=count)
    bounds = split_by_progress(plan.amounts, count, 0.05)
    for run in range(count):
        items = plan.items[bounds[run] : bounds[run + 1]]
        yield painter.paint(plan, items, index + run + 1, last=run == count - 1)

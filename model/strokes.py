"""The strokes engine: a painter's process from brush strokes, on the CPU, with no weights.

The plan follows Hertzmann's painterly rendering (1998): for brushes from large to small (down to
about 1 px), compare the canvas with the goal blurred to that brush's scale, and where a grid cell
is still wrong, start a stroke at its worst pixel that follows the image's contours
(perpendicular to the gradient) until the canvas there is already closer to the goal than the
stroke's colour. The largest brush lays in all of the paper loosely; detail brushes go only where
the goal has detail; on a started canvas a wash first moves the large shapes' tones (wash.py).
Glazes then close what the strokes left, a part at a time, so the process
ends on the goal without a step that pastes it in. Each brush size gets steps by how far it takes
the error down on a log scale, and each step takes away a like part of what is left.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from paintstep.engines import Engine, EngineOption, Report
from paintstep.process import (
    PaintError,
    PaintRequest,
    StepLayer,
    blend_over,
    is_opaque,
    premultiplied,
)
from PIL import Image

from . import band_render
from .painter import Painter, Settings
from .raster import (
    colour_distance,
    pixel_difference,
    spread,
)
from .step_deal import deal_steps, split_by_progress
from .stroke_plan import DETAIL_RADIUS
from .styles import STYLE_HELP, STYLE_OPTIONS, STYLES, paint_in_style, style_goal


class StrokesEngine(Engine):
    name = "strokes"
    description = "Brush strokes planned coarse to fine, on the CPU; no weights needed."
    options = (
        EngineOption(
            "detail",
            float,
            1.0,
            "Finer (higher) or coarser (lower) smallest brush: radius 1 px at 1, 0.5 px at 2.",
            0.25,
            2.0,
        ),
        EngineOption("opacity", float, 0.85, "How opaque each brush stroke is.", 0.2, 1.0),
        EngineOption("jitter", float, 0.05, "How much stroke colours vary.", 0.0, 0.3),
        EngineOption(
            "tolerance",
            int,
            4,
            "How far (0-255) a pixel may be from the target and still count as finished.",
            0,
            64,
        ),
        EngineOption(
            "threshold",
            float,
            0.05,
            "How wrong (0-1) an area must be before a brush paints it.",
            0.005,
            0.5,
        ),
        EngineOption(
            "style",
            str,
            "paint",
            STYLE_HELP,
            choices=STYLES,
        ),
        EngineOption(
            "bristles",
            float,
            0.0,
            "How much the brush's hairs show in its strokes (3 px and wider; the painterly "
            "style's): 0 smooth paint, 1 a dry brush.",
            0.0,
            1.0,
        ),
        *STYLE_OPTIONS,
    )

    def paint(
        self,
        request: PaintRequest,
        cancel: threading.Event | None = None,
        report: Report | None = None,
    ) -> Iterator[StepLayer]:
        request.validate()
        settings = Settings(**self.settings(request))
        cancel = cancel or threading.Event()
        return paint_process(request, settings, cancel)


def paint_process(
    request: PaintRequest, settings: Settings, cancel: threading.Event
) -> Iterator[StepLayer]:
    frame = request.first_frame()
    # The target is laid over the canvas: where it is transparent, the canvas shows. (Paint only
    # adds, so it could not take opacity away there anyway.)
    goal = request.goal
    if not is_opaque(goal):  # an opaque target is itself over anything: no copy needed
        goal = blend_over(frame, goal)
    goal = style_goal(goal, settings)
    paintable = paintable_region(frame, goal, request.mask, settings.tolerance)
    if not paintable.any():
        if request.target is None:
            raise PaintError(
                "The picture looks like the blank paper it would start from, so there is "
                "nothing to paint; choose another --paper or another picture."
            )
        raise PaintError(
            "The canvas already matches the target everywhere it may be painted, so there is "
            "nothing left to paint; give a different target or a larger mask."
        )
    height, width = frame.shape[:2]
    if width * height >= band_render.PARALLEL_AREA:
        band_render.warm()  # the helpers start while the preview runs
    radii = brush_radii(width, height, settings.detail)
    if settings.style != "paint":
        painter = Painter(frame, goal, paintable, settings, np.random.default_rng(request.seed))
        try:
            yield from paint_in_style(
                settings.style, painter, radii, request.steps, request.seed, cancel
            )
        finally:
            band_render.release()
        return
    # A started canvas is first washed where its large shapes are a few levels off (wash.py).
    washes = request.target is not None and request.steps >= WASH_STEPS and len(radii) > 1
    shares, ratios, errors, washes = estimate_shares(
        frame, goal, paintable, radii, settings, request.seed, washes
    )
    painter = Painter(frame, goal, paintable, settings, np.random.default_rng(request.seed))
    try:
        first = painter.wash(radii[1], 1) if washes else None
        if first is not None:
            yield replace(first, stage="lay-in")
        counts = deal_steps(request.steps - (first is not None), shares)
        start = int(first is not None)
        yield from paint_steps(request, painter, radii, counts, ratios, errors, cancel, start)
    finally:
        band_render.release()  # a server keeps running between jobs


def paint_steps(
    request: PaintRequest,
    painter: Painter,
    radii: list[float],
    counts: list[int],
    ratios: list[float],
    errors: list[float],
    cancel: threading.Event,
    start: int = 0,
) -> Iterator[StepLayer]:
    """The steps of each brush size in turn, as dealt, after the first `start` steps."""
    index, spare = start, 0
    for level, radius in enumerate(radii):
        if cancel.is_set():
            return
        finest = level == len(radii) - 1
        count = counts[level] + spare
        if count == 0:
            continue
        plan = painter.plan(radius, finest, lay_in=level == 0, first=index == start, count=count)
        # A size with fewer strokes than steps hands the rest on to the next, and one that
        # would take away next to nothing of the error left hands on all of them.
        spare = 0 if finest else max(0, count - len(plan.items))
        if not finest and plan.amounts.sum() < LEAST_PROGRESS * errors[level]:
            spare = count
        count -= spare
        if count == 0:
            continue
        bounds = split_by_progress(plan.amounts, count, ratios[level])
        for run in range(count):
            if cancel.is_set():
                return
            index += 1
            items = plan.items[bounds[run] : bounds[run + 1]]
            step = painter.paint(plan, items, index, last=index == request.steps)
            yield replace(step, stage=painterly_stage(level, radius, items))


def painterly_stage(level: int, radius: float, items: np.ndarray) -> str:
    """The stage of the painterly process a step belongs to: the lay-in (the largest brush,
    or the wash), shapes, details (brushes of DETAIL_RADIUS and less), the finish (glazes)."""
    if level == 0:
        return "lay-in"
    if (items < 0).any():
        return "finish"
    return "details" if radius <= DETAIL_RADIUS else "shapes"


LEAST_SHARE = 0.05  # of the error on a log scale: what a size must take away to be painted
LEAST_PROGRESS = 0.1  # a size that would take less of the error away than this is left out


def estimate_shares(
    frame: np.ndarray,
    goal: np.ndarray,
    paintable: np.ndarray,
    radii: list[float],
    settings: Settings,
    seed: int,
    washes: bool = False,
) -> tuple[list[float], list[float], list[float], bool]:
    """How much of the process each brush size is, from a quick run at a small size.

    Returns each size's share, the ratio of the error left after it to the error before it,
    the error before it (summed over the paintable pixels, as at full size), and whether a wash
    comes first: asked for (`washes`) and worth a step of its own.
    A size's share is how much it takes the error down on a log scale, as an eye judges
    progress: steps are dealt so that each takes away a like part of what is left. A size gets
    no share (0) when the next smaller brush gets the picture closer to the goal for each pixel
    it paints: on a canvas already blocked in, big brushes would only churn what the artist
    did. Where that leaves out the largest size, the second goes too.
    """
    height, width = frame.shape[:2]
    scale = min(1.0, ESTIMATE_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 1:
        frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))
        goal = np.asarray(Image.fromarray(goal).resize(size, Image.Resampling.BOX))
        small = Image.fromarray(paintable.astype(np.uint8) * 255).resize(size)
        paintable = np.asarray(small) > 127
    area = max(int(paintable.sum()), 1)
    rng = np.random.default_rng(seed)
    painter = Painter(frame, goal, paintable, settings, rng, preview=True, scale=scale)

    def error() -> float:
        distance = colour_distance(premultiplied(painter.frame), painter.goal_pm)
        return float(distance[paintable].sum())

    if washes:  # the sizes share what the wash leaves, if it takes enough away for a step
        unwashed, before = painter.frame.copy(), error()
        washes = painter.wash(radii[1] * scale, 0) is not None
        if washes and error() > (1 - WASH_WORTH) * before:
            painter.frame[...], washes = unwashed, False
    # The error a finished process is left with: about half the tolerance on each pixel.
    floor = max(settings.tolerance, 1) / 2 / 255 * area
    errors = [error()]
    progress, previous = [], errors[0]
    for level, radius in enumerate(radii):
        finest = level == len(radii) - 1
        plan = painter.plan(radius * scale, finest, lay_in=level == 0, first=level == 0)
        before = painter.frame.copy()
        painter.paint(plan, plan.items, 0, last=finest)
        changed = np.count_nonzero(np.any(painter.frame != before, axis=2))
        left = error()
        progress.append((previous - left) / changed if changed else 0.0)
        previous = left
        errors.append(max(left, floor))
    errors = [max(error, floor) for error in errors]
    ratios = [min(1.0, after / before) for before, after in zip(errors, errors[1:])]
    # A size the preview can see (a brush of a pixel or more there) and finds next to nothing
    # for is left out; one it cannot see keeps a little share, for the picture's fine detail.
    shares = [
        0.0
        if radius * scale >= 1 and -np.log(ratio) < LEAST_SHARE
        else max(-np.log(ratio), LEAST_SHARE)
        for ratio, radius in zip(ratios, radii)
    ]
    shares[-1] = max(shares[-1], LEAST_SHARE)  # the finest size carries the glazes
    for level in range(len(radii) - 2):
        if progress[level] < progress[level + 1]:
            shares[level] = 0.0
    if shares[0] == 0.0 and len(radii) > 3:
        # The largest brush finds the large shapes already there: a blocked-in canvas. The
        # next size's wide semi-opaque strokes then mostly churn the block-in: on the bundled
        # photos' blurred block-ins, a quarter of the way in they had taken away 39-58 % of
        # the structure error, against 53-80 % when refining starts at the size below
        # (docs/benchmarks.md).
        shares[1] = 0.0
    return shares, ratios, [error / scale**2 for error in errors[:-1]], washes


ESTIMATE_SIDE = 192  # px: the size of the quick run that estimates each brush's share of paint


def paintable_region(
    frame: np.ndarray, goal: np.ndarray, mask: np.ndarray | None, tolerance: int
) -> np.ndarray:
    """Where the brush may paint: inside the mask, and not where the canvas is finished.

    A pixel is finished when it is within `tolerance` of the goal; isolated finished specks
    (a blurred block-in that happens to match) are painted over like their surroundings.
    """
    difference = pixel_difference(premultiplied(frame), premultiplied(goal))
    finished = spread(spread(difference <= tolerance, np.minimum), np.maximum)
    paintable = ~finished & (difference > 0)
    if mask is not None:
        paintable &= mask.astype(bool)
    return paintable


def brush_radii(width: int, height: int, detail: float) -> list[float]:
    """Brush radii from the largest (blocking in) to the smallest (details), halving each time;
    the last is the finishing pass."""
    longest = max(width, height)
    largest = max(2.0, longest / 16)
    smallest = max(0.5, SMALLEST_RADIUS / detail)
    radii = [largest]
    while radii[-1] / 2 >= smallest * 0.75:
        radii.append(radii[-1] / 2)
    return radii


WASH_STEPS = 4  # steps at the least for a started canvas's first to be a wash
WASH_WORTH = 0.05  # of the error, at the least, that a wash takes away to be a step
SMALLEST_RADIUS = 1.0  # px: the finest brush reaches a picture's own detail at every size

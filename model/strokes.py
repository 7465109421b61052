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
from dataclasses import dataclass

import numpy as np
from paintstep.engines import Engine, EngineOption, Report
from paintstep.process import (
    PaintError,
    PaintRequest,
    StepLayer,
    Thumbnail,
    blend_over,
    composite,
    crop_to_paint,
    is_opaque,
)
from PIL import Image

from . import band_render
from .brush import Strokes, premultiply
from .illustration import paint_illustration
from .raster import (
    blur,
    box_reduce,
    colour_distance,
    glaze_layer,
    limit_alpha,
    pixel_difference,
    spread,
)
from .step_deal import deal_steps, split_by_progress
from .stroke_plan import DETAIL_RADIUS, as_painted, painting_order, plan_level
from .wash import wash_layer

STYLES = ("paint", "illustration")  # whose process: the painter's, the illustrator's


@dataclass(frozen=True)
class Settings:
    detail: float
    opacity: float
    jitter: float
    tolerance: int
    threshold: float
    bristles: float = 0.0  # smooth strokes unless asked (the diffusion engine builds its own)
    style: str = "paint"


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
            "Whose process: paint (alla prima, large to small brushes) or illustration "
            "(sketch, lines, flats, shading, details).",
            choices=STYLES,
        ),
        EngineOption(
            "bristles",
            float,
            0.0,
            "How much the brush's hairs show in its strokes: 0 smooth paint, 1 a dry brush.",
            0.0,
            1.0,
        ),
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
    if settings.style == "illustration":
        painter = Painter(frame, goal, paintable, settings, np.random.default_rng(request.seed))
        try:
            yield from paint_illustration(painter, radii, request.steps, request.seed, cancel)
        finally:
            band_render.release()
        return
    # A started canvas is first washed where its large shapes are a few levels off (wash.py).
    washes = request.target is not None and request.steps >= WASH_STEPS
    shares, ratios, errors, washes = estimate_shares(
        frame, goal, paintable, radii, settings, request.seed, washes
    )
    painter = Painter(frame, goal, paintable, settings, np.random.default_rng(request.seed))
    try:
        first = painter.wash(radii[1], 1) if washes else None
        if first is not None:
            yield first
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
            yield painter.paint(plan, items, index, last=index == request.steps)


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
        return float(colour_distance(premultiply(painter.frame), painter.goal_pm)[paintable].sum())

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


@dataclass
class LevelPlan:
    """One brush size's part of the process, in painting order.

    items[i] >= 0 is a stroke (an index into strokes); items[i] < 0 is a glaze, -1 - items[i]
    being level * bands + band (Painter.band). amounts[i] is how much closer item i brings the
    picture, in the units of colour_distance.
    """

    strokes: Strokes
    items: np.ndarray
    amounts: np.ndarray


class Painter:
    """The canvas as the process paints it, and how each step is planned and painted."""

    def __init__(
        self,
        frame: np.ndarray,
        goal: np.ndarray,
        paintable: np.ndarray,
        settings: Settings,
        rng: np.random.Generator,
        preview: bool = False,
        scale: float = 1.0,
    ) -> None:
        self.frame = frame.copy()
        self.goal = np.ascontiguousarray(goal)
        # Paint only adds opacity: on an opaque start with an opaque goal, all stays opaque.
        self.opaque = is_opaque(frame) and is_opaque(goal)
        self.goal_pm = premultiply(goal)
        self.paintable = paintable
        self.settings = settings
        self.rng = rng
        self.preview = preview
        self.scale = scale  # of this canvas to the picture's (a preview's is smaller)
        self.thumbnail = None if preview else Thumbnail(self.frame)
        self.detail_map: np.ndarray | None = None
        self.reduced: dict[int, np.ndarray] = {}
        self.bands = GLAZE_BANDS
        self.rows = (0, frame.shape[0])  # the rows the glazes go over

    def plan(
        self,
        radius: float,
        finest: bool,
        lay_in: bool = False,
        first: bool = False,
        count: int = 1,
    ) -> LevelPlan:
        """The strokes of one brush size, to be dealt into `count` steps. The `lay_in` (the
        largest brush on paper) covers the canvas all over, the palest passages too, with
        strokes closer together so that they overlap, in no order of place; the `first` size
        painted goes on semi-transparent. The finest size ends with the glazes."""
        canvas = premultiply(self.frame)
        # A detail brush aims at the goal itself: blurred by a pixel it would be much the same.
        detail = radius <= DETAIL_RADIUS * self.scale  # judged at full size in the preview too
        threshold = self.settings.tolerance / 255 if lay_in else self.settings.threshold
        spacing = radius if lay_in else 2 * radius
        opacity = self.settings.opacity * (FIRST_OPACITY if first else 1.0)
        # Detail brushes go only where the goal itself has detail: elsewhere what the larger
        # brushes left is smooth enough for the glazes, and the cost follows the detail.
        where = self.paintable & self.detailed() if detail else self.paintable
        # A brush sees the goal blurred to its own scale, so its strokes are planned on a copy
        # reduced to a few pixels a radius: the same strokes, without full-size error maps.
        factor = 1 if detail else max(1, int(radius // PLAN_PIXELS))
        if factor > 1:
            reference = blur(self.reduced_goal(factor), radius / factor)
            canvas = box_reduce(canvas, "RGBa", factor)
            where = box_reduce(where.astype(np.uint8) * 255, "L", factor) > 127
        else:
            reference = self.goal_pm if detail else blur(self.goal_pm, radius)
        strokes, gain, progress = plan_level(
            canvas,
            reference,
            where,
            radius / factor,
            self.settings.jitter,
            self.rng,
            threshold,
            spacing / factor,
            opacity,
            detail,
        )
        if factor > 1:
            strokes = strokes.enlarged(factor, self.paintable.shape)
            progress = progress * factor**2
        if not finest:
            if lay_in:
                order = self.rng.permutation(len(strokes))
                strokes, progress = strokes.take(order), progress[order]
                painted = as_painted(strokes, progress, self.paintable.shape)
                return LevelPlan(strokes, np.arange(len(strokes)), painted)
            order = painting_order(strokes, gain, self.rng)
            return LevelPlan(strokes.take(order), np.arange(len(strokes)), progress[order])
        # The finest strokes go shape by shape too, then the glazes: each takes every pixel
        # still more than its level off half the way to the goal, so that what is left shrinks
        # over the whole canvas and no step moves a pixel far onto the goal. Each goes on in
        # bands of the rows that have something off, so that steps can share them out (at least
        # one item a step, none over finished rows); what each does is guessed from what is off
        # before the strokes.
        residual = pixel_difference(canvas, self.goal_pm)
        residual[~self.paintable] = 0
        rows = np.flatnonzero((residual > GLAZES[-1]).any(axis=1))
        self.rows = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, len(residual))
        wanted = max(GLAZE_BANDS, -(-count // len(GLAZES)))
        self.bands = max(1, min(wanted, self.rows[1] - self.rows[0]))  # never a band of no rows
        glazes = []
        for level in GLAZES:
            off = np.where(residual > level, residual, 0).astype(np.float32)
            for part in range(self.bands):
                _, top, _, bottom = self.band(part)
                glazes.append(float(off[top:bottom].sum()) / 2 / 255)
        order = painting_order(strokes, gain, self.rng)
        items = np.concatenate([order, -1 - np.arange(len(glazes))])
        return LevelPlan(strokes, items, np.concatenate([progress[order], glazes]))

    def reduced_goal(self, factor: int) -> np.ndarray:
        """The goal reduced `factor` times (each cell's mean), kept for the sizes that share it."""
        if factor not in self.reduced:
            self.reduced[factor] = box_reduce(self.goal_pm, "RGBa", factor)
        return self.reduced[factor]

    def detailed(self) -> np.ndarray:
        """Where the goal has detail of a few pixels: it differs from itself blurred."""
        if self.detail_map is None:
            difference = pixel_difference(self.goal_pm, blur(self.goal_pm, DETAIL_RADIUS))
            self.detail_map = spread(difference > DETAIL_CONTRAST, np.maximum)
        return self.detail_map

    def paint(self, plan: LevelPlan, items: np.ndarray, index: int, last: bool) -> StepLayer:
        """Paint these items as step `index`; the last step also finishes all that is left."""
        height, width = self.paintable.shape
        batch = plan.strokes.take(items[items >= 0])
        batch.bristles = self.settings.bristles
        glazes = np.sort(-1 - items[items < 0])
        x0, y0, x1, y1 = (0, 0, width, height) if last else batch.bounds(width, height)
        for glaze in glazes:
            x0, y0, x1, y1 = union((x0, y0, x1, y1), self.band(glaze % self.bands))
        x0, y0, x1, y1 = (int(v) for v in (x0, y0, x1, y1))
        window = (slice(y0, y1), slice(x0, x1))
        frame = self.frame[window]
        layer = band_render.render_layer(batch, x0, y0, x1 - x0, y1 - y0)
        np.multiply(layer[..., 3], self.paintable[window], out=layer[..., 3])
        if not self.opaque:
            limit_alpha(layer, frame, self.goal[window])
        if last or glazes.size:
            # Only pixels that are off, or that this step paints, can need a glaze.
            residual = pixel_difference(premultiply(frame), self.goal_pm[window])
            painted = layer[..., 3] > 0
        for glaze in glazes:
            level = GLAZES[glaze // self.bands]
            band = np.zeros(height, bool)
            _, top, _, bottom = self.band(glaze % self.bands)
            band[top:bottom] = True
            where = self.paintable[window] & band[window[0], None]
            where &= (residual > level) | painted
            glaze_layer(layer, x0, y0, self.frame, self.goal, where, level, halfway=True)
        if last:
            level = self.settings.tolerance
            where = self.paintable[window] & ((residual > level) | painted)
            glaze_layer(layer, x0, y0, self.frame, self.goal, where, level)
        return self.lay(layer, x0, y0, index)

    def wash(self, radius: float, index: int) -> StepLayer | None:
        """Step `index` as a wash over the large shapes a brush of `radius` sees (wash.py), or
        None when they are all close enough."""
        tolerance = self.settings.tolerance
        washed = wash_layer(self.frame, self.goal, self.paintable, radius, tolerance)
        return None if washed is None else self.lay(*washed, index)

    def lay(self, layer: np.ndarray, x0: int, y0: int, index: int) -> StepLayer:
        """The layer (placed at x0, y0) as step `index`, cropped to its paint and laid on the
        canvas."""
        pixels, x, y = crop_to_paint(layer, x0, y0)
        step = StepLayer(index, int(x), int(y), np.ascontiguousarray(pixels))
        composite(self.frame, step)
        if self.preview:
            return step
        small = self.thumbnail.update(self.frame, x, y, x + step.width, y + step.height)
        return StepLayer(index, x, y, step.pixels, small)

    def band(self, part: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the band of rows that part `part` of a glaze covers."""
        top, bottom = self.rows
        rows = bottom - top
        width = self.paintable.shape[1]
        return (0, top + part * rows // self.bands, width, top + (part + 1) * rows // self.bands)


def union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if a[0] == a[2] or a[1] == a[3]:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def paintable_region(
    frame: np.ndarray, goal: np.ndarray, mask: np.ndarray | None, tolerance: int
) -> np.ndarray:
    """Where the brush may paint: inside the mask, and not where the canvas is finished.

    A pixel is finished when it is within `tolerance` of the goal; isolated finished specks
    (a blurred block-in that happens to match) are painted over like their surroundings.
    """
    difference = pixel_difference(premultiply(frame), premultiply(goal))
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
FIRST_OPACITY = 0.6  # the first brush size painted goes on this much thinner: a loose lay-in
DETAIL_CONTRAST = 16  # levels: the goal has detail where it is this far from itself blurred
SMALLEST_RADIUS = 1.0  # px: the finest brush reaches a picture's own detail at every size

# A glaze takes each pixel more than this far off (largest premultiplied channel, 0-255) half
# the way to the goal, or all of it where that is a small move; the last step closes what is
# left above the tolerance.
GLAZES = (32, 16, 8, 4)
GLAZE_BANDS = 4  # bands of rows a glaze goes on in, at the least
PLAN_PIXELS = 4  # px of a brush radius, at the least, in the copy its strokes are planned on

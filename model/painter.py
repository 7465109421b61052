"""The canvas as the strokes engine paints it (Painter): one brush size's plan, and a step's
strokes, glazes and wash laid on it. strokes.py deals the steps; the illustration style
(illustration.py) uses the same painter for its details and finish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from paintstep.process import (
    StepLayer,
    Thumbnail,
    composite,
    crop_to_paint,
    is_opaque,
    premultiplied,
)

from . import band_render
from .brush import Strokes
from .raster import blur, box_reduce, glaze_layer, limit_alpha, pixel_difference, spread
from .stroke_plan import DETAIL_RADIUS, as_painted, painting_order, plan_level
from .wash import wash_layer


@dataclass(frozen=True)
class Settings:
    detail: float
    opacity: float
    jitter: float
    tolerance: int
    threshold: float
    bristles: float = 0.0  # smooth strokes unless asked (the diffusion engine builds its own)
    style: str = "paint"
    colour: str = "true"  # the pencil style's: "false" draws in greys


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
        self.goal_pm = premultiplied(goal)
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
        canvas = premultiplied(self.frame)
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
            residual = pixel_difference(premultiplied(frame), self.goal_pm[window])
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
        x, y = int(x), int(y)  # plain ints: numpy's cannot be written to json or msgpack
        step = StepLayer(index, x, y, np.ascontiguousarray(pixels))
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


FIRST_OPACITY = 0.6  # the first brush size painted goes on this much thinner: a loose lay-in
DETAIL_CONTRAST = 16  # levels: the goal has detail where it is this far from itself blurred
# A glaze takes each pixel more than this far off (largest premultiplied channel, 0-255) half
# the way to the goal, or all of it where that is a small move; the last step closes what is
# left above the tolerance.
GLAZES = (32, 16, 8, 4)
GLAZE_BANDS = 4  # bands of rows a glaze goes on in, at the least
PLAN_PIXELS = 4  # px of a brush radius, at the least, in the copy its strokes are planned on

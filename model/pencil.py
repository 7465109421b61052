"""The pencil drawing's process (the strokes engine's `style` "pencil").

A draughtsman builds tone with graphite: parallel hatching that follows the forms, then
cross-hatching over it where the tone is darker, then colour where the picture has it (or no
colour: `colour=false` draws in greys and ends on the goal in greys), then the details. Each
stage here is made from the goal with no weights:

- hatching: short graphite lines along the forms (the orientation of the goal's luminance
  structure tensor: across its gradient), denser and darker where the goal is darker than the
  canvas, an area of the picture a step;
- cross-hatching: the same lines across the first (along the gradient) where the tone is
  darker still, and a third set at 45 degrees in the darkest parts;
- colour: coloured-pencil lines in the goal's local colour along the forms, where the goal has
  colour (left out in greys);
- details and finish: the painterly engine's detail brushes and glazes (strokes.Painter), which
  end on the goal.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from paintstep.process import StepLayer, blend_over
from PIL import Image, ImageFilter

from . import band_render
from .brush import Strokes
from .finishing import detail_steps, finish_steps
from .illustration import luminance
from .raster import gaussian_blur
from .step_deal import stage_counts as deal_stages

STAGES = ("hatching", "cross-hatching", "colour", "details", "finish")
WEIGHTS = {"hatching": 2.0, "cross-hatching": 1.5, "colour": 1.5, "details": 1.0, "finish": 1.0}
KEPT = ("finish", "hatching", "cross-hatching", "colour", "details")
GRAPHITE = (70, 70, 70)  # a soft pencil's grey, before its opacity
GAP = 3.0  # px at 512 px between hatching lines
LENGTH = 6  # a hatching line's length, in gaps
POINTS = 3  # points along a line: nearly straight, bending with the forms
FIELD_SIDE = 512  # the forms' orientation is found on a copy at most this large
PLAIN = 0.08  # how strongly plain areas keep the hand's own direction
FORM_SCALE = 6.0  # px at 512 px the structure tensor is averaged over
# Tones (the share of the canvas's light the goal takes away) each set of lines starts at,
# and the tone at which it is at its densest.
SETS = {"hatching": (0.03, 0.6), "cross-hatching": (0.35, 0.8), "diagonal": (0.6, 0.95)}
PARTS = ("points", "count", "color", "radius")  # what a batch of Strokes holds
CHROMA = 24  # levels between the goal's largest and least channel: colour to draw in


def stage_counts(steps: int, colour: bool = True) -> dict[str, int]:
    """Steps for each stage (0 for a stage left out), in total `steps`; no colour stage when
    the drawing stays in greys."""
    weights = {stage: w for stage, w in WEIGHTS.items() if colour or stage != "colour"}
    counts = deal_stages(steps, weights, tuple(s for s in KEPT if s in weights))
    return {stage: counts.get(stage, 0) for stage in STAGES}


def grey(goal: np.ndarray) -> np.ndarray:
    """The goal in greys (its luminance in every channel), its opacity kept."""
    out = goal.copy()
    light = np.rint(goal[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))
    out[..., :3] = np.clip(light, 0, 255).astype(np.uint8)[..., None]
    return out


def paint_pencil(
    painter, radii: list[float], steps: int, seed: int, cancel: threading.Event
) -> Iterator[StepLayer]:
    """The steps of the pencil drawing over the painter's canvas (strokes.Painter)."""
    colour = painter.settings.colour == "true"
    yield from Draughtsman(painter, radii, stage_counts(steps, colour), seed).steps(cancel)


def smooth_field(values: np.ndarray, sigma: float) -> np.ndarray:
    """A (H, W) float map blurred by about a Gaussian of `sigma` px: three box blurs of the
    same width (Pillow blurs only 8-bit pictures), edges repeated."""
    width = 2 * int(round((np.sqrt(4 * sigma * sigma + 1) - 1) / 2)) + 1  # odd: centred
    out = np.asarray(values, np.float64)
    for axis in (0, 1):
        for _ in range(3):
            pad = [(0, 0), (0, 0)]
            pad[axis] = (width // 2 + 1, width // 2)
            sums = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
            ahead = np.take(sums, np.arange(width, sums.shape[axis]), axis=axis)
            behind = np.take(sums, np.arange(0, sums.shape[axis] - width), axis=axis)
            out = (ahead - behind) / width
    return out.astype(np.float32)


def form_directions(light: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """(2, h, w) float32 the unit direction (x, y) the forms run in at each pixel of a copy of
    a (H, W) luminance map reduced to at most FIELD_SIDE px, and the copy's scale: the
    structure tensor's orientation across the gradient."""
    height, width = light.shape
    factor = min(1.0, FIELD_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    picture = Image.fromarray(np.clip(light, 0, 255).astype(np.uint8), "L")
    small = picture.resize(size, Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(1.0))
    values = np.asarray(small, np.float32)
    if min(values.shape) < 2:
        ones = np.ones(values.shape, np.float32)
        return np.stack([ones, 0 * ones]), factor
    gy, gx = np.gradient(values)
    sigma = max(2.0, FORM_SCALE * scale * factor)

    xx, yy, xy = (smooth_field(field, sigma) for field in (gx * gx, gy * gy, gx * gy))
    # Where the forms show no direction, the hand's own: hatching from lower left to upper
    # right (a tensor whose gradient runs across that, a share of the picture's typical one).
    prior = PLAIN * float(np.median(xx + yy)) + 1e-3
    xx, yy, xy = xx + prior / 2, yy + prior / 2, xy + prior / 2
    across = 0.5 * np.arctan2(2 * xy, xx - yy) + np.pi / 2  # the gradient's, turned
    return np.stack([np.cos(across), np.sin(across)]).astype(np.float32), factor


def union(box: tuple[int, int, int, int], where: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the box and the pixels of `where` together."""
    rows, cols = np.flatnonzero(where.any(axis=1)), np.flatnonzero(where.any(axis=0))
    if box[0] == box[2] or box[1] == box[3]:
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    return (
        min(box[0], int(cols[0])),
        min(box[1], int(rows[0])),
        max(box[2], int(cols[-1]) + 1),
        max(box[3], int(rows[-1]) + 1),
    )


def trace(
    seeds: np.ndarray, directions: np.ndarray, factor: float, turn: float, step: float, shape
) -> np.ndarray:
    """(n, POINTS, 2) float32 lines from the (n, 2) seeds (x, y) along the directions turned
    by `turn` radians, POINTS points `step` px apart, each keeping its sense."""
    height, width = shape
    small_h, small_w = directions.shape[1:]
    cos, sin = np.cos(turn), np.sin(turn)
    path = np.empty((len(seeds), POINTS, 2), np.float32)
    position = seeds.astype(np.float32)
    previous = None
    for k in range(POINTS):
        path[:, k] = position
        ix = np.clip((position[:, 0] * factor).astype(int), 0, small_w - 1)
        iy = np.clip((position[:, 1] * factor).astype(int), 0, small_h - 1)
        dx, dy = directions[0, iy, ix], directions[1, iy, ix]
        heading = np.stack([dx * cos - dy * sin, dx * sin + dy * cos], axis=1)
        if previous is not None:
            heading *= np.where((heading * previous).sum(axis=1) < 0, -1.0, 1.0)[:, None]
        position = position + step * heading
        previous = heading
    # Each line centred on its seed: half of it before, half after.
    path -= (path[:, -1:] - path[:, :1]) / 2
    np.clip(path[..., 0], 0, width - 1, out=path[..., 0])
    np.clip(path[..., 1], 0, height - 1, out=path[..., 1])
    return path


class Draughtsman:
    """The pencil drawing's stages over a strokes Painter (which holds the canvas)."""

    def __init__(self, painter, radii: list[float], counts: dict[str, int], seed: int) -> None:
        self.painter = painter
        self.radii = radii
        self.counts = counts
        self.rng = np.random.default_rng([seed, 20])
        height, width = painter.paintable.shape
        self.scale = max(width, height) / 512  # lines look alike at every size
        self.where = painter.paintable & (painter.goal[..., 3] == 255)
        # Lines go on paper: the first step lays white paper where the canvas is not opaque
        # (a line there could not be closed by the glazes later).
        self.paper = self.where & (painter.frame[..., 3] < 255)

    @functools.cached_property
    def light(self) -> np.ndarray:
        """The goal's luminance (for the stages that use it: a short process has none)."""
        return luminance(self.painter.goal)

    @functools.cached_property
    def directions(self) -> tuple[np.ndarray, float]:
        return form_directions(self.light, self.scale)

    @functools.cached_property
    def tone(self) -> np.ndarray:
        """(H, W) float32 0-1: the share of the canvas's light (as the drawing started) the
        goal takes away; 0 where it may not draw."""
        before = luminance(self.painter.frame)
        tone = 1 - (self.light + 8) / (before + 8)
        return np.where(self.where, np.clip(tone, 0, 1), 0).astype(np.float32)

    def steps(self, cancel: threading.Event) -> Iterator[StepLayer]:
        index = 0
        for stage in STAGES:
            count = self.counts[stage]
            if count == 0:
                continue
            for layer in getattr(self, stage.replace("-", "_"))(count, index):
                if cancel.is_set():
                    return
                index += 1
                yield replace(layer, stage=stage)

    def seeds(self, density: np.ndarray, gap: float, length: float) -> np.ndarray:
        """(n, 2) float32 x, y where lines start: a jittered grid of one a line's area (gap
        wide, `length` long), each kept with the chance `density` (0-1) has there."""
        height, width = density.shape
        spacing = max(1.0, float(np.sqrt(gap * length)))
        ys, xs = np.mgrid[0:height:spacing, 0:width:spacing]
        points = np.stack([xs.ravel(), ys.ravel()], axis=1)
        points += self.rng.uniform(0, spacing, points.shape)
        points[:, 0] = np.minimum(points[:, 0], width - 1)
        points[:, 1] = np.minimum(points[:, 1], height - 1)
        chance = density[points[:, 1].astype(int), points[:, 0].astype(int)]
        return points[self.rng.random(len(points)) < chance].astype(np.float32)

    def lines(self, start: float, full: float, turn: float) -> Strokes:
        """Graphite lines along the forms turned by `turn`, where the tone is over `start`,
        densest and darkest at `full`."""
        gap = max(2.0, GAP * self.scale)
        density = np.clip((self.tone - start) / (full - start), 0, 1)
        seeds = self.seeds(density, gap, LENGTH * gap)
        if len(seeds) == 0:
            return Strokes.none()
        shape = self.where.shape
        path = trace(seeds, *self.directions, turn, LENGTH * gap / (POINTS - 1), shape)
        path += self.rng.normal(0, 0.25 * gap, (len(seeds), 1, 2)).astype(np.float32)
        np.clip(path[..., 0], 0, shape[1] - 1, out=path[..., 0])
        np.clip(path[..., 1], 0, shape[0] - 1, out=path[..., 1])
        at = density[seeds[:, 1].astype(int), seeds[:, 0].astype(int)]
        colour = np.tile(np.array([c / 255 for c in GRAPHITE] + [0.0], np.float32), (len(at), 1))
        colour[:, 3] = (0.3 + 0.55 * at) * self.rng.uniform(0.85, 1.0, len(at))
        radius = np.full(len(at), max(0.6, 0.7 * self.scale), np.float32)
        return Strokes(path, np.full(len(at), POINTS, np.int64), colour, radius)

    def drawn(
        self, strokes: Strokes, count: int, index: int, by_area: bool = True
    ) -> Iterator[StepLayer]:
        """The strokes in `count` steps, only where the drawing may go: an area of the
        picture a step (in tiles, row by row), or all over a little more each step."""
        height, width = self.where.shape
        if len(strokes) and not by_area:
            strokes = strokes.take(self.rng.permutation(len(strokes)))
        elif len(strokes):
            tiles = max(1, int(np.ceil(np.sqrt(count))))
            centre = strokes.points[:, 0]
            row = np.minimum(centre[:, 1] * tiles // height, tiles - 1)
            col = np.minimum(centre[:, 0] * tiles // width, tiles - 1)
            order = np.lexsort((self.rng.random(len(strokes)), col, row))
            strokes = strokes.take(order)
        bounds = np.linspace(0, len(strokes), count + 1).astype(int)
        for part in range(count):
            batch = strokes.take(slice(bounds[part], bounds[part + 1]))
            x0, y0, x1, y1 = batch.bounds(width, height)
            paper = index + part == 0 and self.paper.any()
            if paper:
                x0, y0, x1, y1 = union((x0, y0, x1, y1), self.paper)
            layer = band_render.render_layer(batch, x0, y0, x1 - x0, y1 - y0)
            np.multiply(layer[..., 3], self.where[y0:y1, x0:x1], out=layer[..., 3])
            if paper:
                under = np.zeros_like(layer)
                under[self.paper[y0:y1, x0:x1]] = 255
                layer = blend_over(under, layer)
            yield self.painter.lay(layer, x0, y0, index + part + 1)

    def hatching(self, count: int, index: int) -> Iterator[StepLayer]:
        yield from self.drawn(self.lines(*SETS["hatching"], 0.0), count, index)

    def cross_hatching(self, count: int, index: int) -> Iterator[StepLayer]:
        across = self.lines(*SETS["cross-hatching"], np.pi / 2)
        diagonal = self.lines(*SETS["diagonal"], np.pi / 4)
        sets = [lines for lines in (across, diagonal) if len(lines)]
        both = (
            Strokes(*(np.concatenate([getattr(lines, part) for lines in sets]) for part in PARTS))
            if sets
            else Strokes.none()
        )
        yield from self.drawn(both, count, index)

    def colour(self, count: int, index: int) -> Iterator[StepLayer]:
        """Coloured-pencil lines along the forms in the goal's local colour, where it has
        colour."""
        goal = self.painter.goal
        local = gaussian_blur(np.ascontiguousarray(goal), max(1.0, 1.5 * self.scale))
        rgb = local[..., :3].astype(np.int16)
        chroma = rgb.max(axis=2) - rgb.min(axis=2)
        density = np.where(self.where & (chroma > CHROMA), 1.0, 0.0).astype(np.float32)
        gap = max(1.5, 0.7 * GAP * self.scale)
        seeds = self.seeds(density, gap, LENGTH * gap)
        if len(seeds) == 0:
            yield from self.drawn(Strokes.none(), count, index)
            return
        shape = self.where.shape
        path = trace(seeds, *self.directions, 0.2, LENGTH * gap / (POINTS - 1), shape)
        ix, iy = seeds[:, 0].astype(int), seeds[:, 1].astype(int)
        colour = np.empty((len(seeds), 4), np.float32)
        colour[:, :3] = local[iy, ix, :3] / 255
        colour[:, 3] = self.rng.uniform(0.55, 0.75, len(seeds))
        radius = np.full(len(seeds), max(0.7, 1.0 * self.scale), np.float32)
        strokes = Strokes(path, np.full(len(seeds), POINTS, np.int64), colour, radius)
        yield from self.drawn(strokes, count, index, by_area=False)

    def details(self, count: int, index: int) -> Iterator[StepLayer]:
        yield from detail_steps(self.painter, self.radii, count, index)

    def finish(self, count: int, index: int) -> Iterator[StepLayer]:
        yield from finish_steps(self.painter, self.radii, count, index)

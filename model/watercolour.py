"""The watercolourist's process (the strokes engine's `style` "watercolour").

A watercolourist keeps the paper for the whites and lays transparent washes over the rest,
from light to dark, each over a smaller part of the picture, then puts in the dark details.
Each stage here is made from the goal with no weights:

- washes: the darkening the goal needs (its optical density over the canvas, per channel) in
  slices from light to dark: wash k darkens every pixel that needs more than k - 1 slices by
  one more, so the first wash covers nearly all of the picture and the last only its darks.
  A wash sees the goal blurred (no texture) and never darker than the goal itself. It only
  darkens, as glazed pigment does (a translucent layer, multiply-like); pigment pools darker
  at a wash's edges (wet edges) and settles in the paper's grain (granulation, seeded); the
  goal's near-white parts are never washed: they stay paper;
- details: what is left to darken at full resolution (the texture and the small darks),
  again from light to dark, only darkening;
- finish: the painterly engine's finest brush and glazes (strokes.Painter), which end on the
  goal (they lift what the wet edges and the grain left too dark).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from paintstep.bands import in_bands
from paintstep.process import StepLayer
from PIL import Image

from .finishing import finish_steps
from .illustration import blurred
from .raster import blur
from .step_deal import stage_counts as deal_stages

STAGES = ("washes", "details", "finish")
WEIGHTS = {"washes": 1.5, "details": 0.7, "finish": 0.8}
KEPT = ("finish", "washes", "details")  # with fewer steps than stages, these first
WHITE = 12  # levels: a pixel the goal darkens less than this in every channel stays paper
DARKEST = 8.0  # levels added to both sides of a density's ratio: black's density is finite
WASH_BLUR = 2.5  # px at 512 px: how blurred the goal is as the last wash sees it
WASH_BREADTH = 8.0  # the first wash sees it this many times more blurred
WET = 1.6  # a wash's extra density at its edge, of what it lays there (pigment pooled)
EDGE_BLUR = 3.0  # px at 512 px: how wide the pooled edge is
GRAIN = 0.15  # the granulation: extra density in its darkest specks, of what a wash lays
BLOOM = 0.15  # how much a wash's density varies over its area (uneven pigment), at most
DENSITY_LEVELS = 72  # levels of 8 bits a unit of density while a wash is averaged
GRAIN_LEVELS = 40  # the grain's levels a unit of extra pigment
CHUNK = 256  # rows a band of floats holds at a time
PIGMENT = 1.25  # a wash layer's opacity over the share of light it takes: the pigment's tint


def stage_counts(steps: int) -> dict[str, int]:
    """Steps for each stage (0 for a stage left out), in total `steps`."""
    return deal_stages(steps, WEIGHTS, KEPT)


def paint_watercolour(
    painter, radii: list[float], steps: int, seed: int, cancel: threading.Event
) -> Iterator[StepLayer]:
    """The steps of the watercolourist's process over the painter's canvas (strokes.Painter)."""
    yield from Watercolourist(painter, radii, stage_counts(steps), seed).steps(cancel)


def seen_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32: the colour of straight RGBA as seen on white paper, 0-255."""
    rgb = rgba[..., :3].astype(np.float32)
    if rgba[..., 3].min(initial=255) == 255:
        return rgb
    alpha = rgba[..., 3:].astype(np.float32) / 255
    return rgb * alpha + 255 * (1 - alpha)


def planes(rgba: np.ndarray) -> list[np.ndarray]:
    """Straight RGBA as seen on white: three (h, w) float32 planes, red, green, blue."""
    rgb = [rgba[..., channel].astype(np.float32) for channel in range(3)]
    if rgba[..., 3].min(initial=255) < 255:
        alpha = rgba[..., 3].astype(np.float32) / 255
        rgb = [plane * alpha + 255 * (1 - alpha) for plane in rgb]
    return rgb


def density(under: np.ndarray, over: np.ndarray) -> np.ndarray:
    """How much pigment (optical density, per channel) turns colour `under` into `over`;
    0 where `over` is as light or lighter."""
    ratio = (np.asarray(under, np.float32) + DARKEST) / (np.asarray(over, np.float32) + DARKEST)
    return np.log(np.maximum(ratio, 1, out=ratio), out=ratio)


def channels(values: np.ndarray, pick) -> np.ndarray:
    """(H, W) the largest (pick=np.maximum) or least (np.minimum) of the three channels:
    channel by channel, many times faster than a reduction over the short last axis."""
    return pick(pick(values[..., 0], values[..., 1]), values[..., 2])


def darkening(seen: list[np.ndarray], wanted: list[np.ndarray]) -> np.ndarray:
    """(h, w, 4) uint8 straight RGBA: a translucent layer that, laid over colours `seen` (as
    seen on white), makes them `wanted` (no lighter than `seen`), and never lighter than they
    were (a glaze of pigment: its colour is darker than what is under it in every channel).
    Colours come as three (h, w) float32 planes: red, green, blue."""
    kept = None  # the light the layer lets through: the least of the channels'
    for under, over in zip(seen, wanted):
        share = over / np.maximum(under, 1e-3)
        kept = share if kept is None else np.minimum(kept, share, out=kept)
    np.minimum(kept, 1, out=kept)
    opacity = (1 - kept) * (PIGMENT * 255)
    # At least the alpha needed, so that the colour stays >= 0; at most opaque.
    np.ceil(np.minimum(opacity, 255 + 1e-4, out=opacity) - 1e-4, out=opacity)
    spread = 255 / np.maximum(opacity, 1)
    layer = np.empty((*kept.shape, 4), np.uint8)
    for channel, (under, over) in enumerate(zip(seen, wanted)):
        colour = over - under
        colour *= spread
        colour += under
        np.floor(colour, out=colour)  # rounded down: over it, nothing lightens
        layer[..., channel] = np.maximum(colour, 0, out=colour)  # no more than `under`
    layer[..., 3] = opacity
    return layer


def box_of(where: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns of the smallest box holding every pixel of `where`, or None."""
    rows = np.flatnonzero(where.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(where.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def by_rows(height: int, work) -> None:
    """work(top, bottom) over bands of CHUNK rows, each band on all cores: a few MB of
    floats at a time at 4096 px."""
    for top in range(0, height, CHUNK):
        bottom = min(top + CHUNK, height)
        in_bands(bottom - top, lambda a, b, top=top: work(top + a, top + b))


def as_levels(values: np.ndarray) -> np.ndarray:
    """Colours (0-255 floats) rounded to uint8."""
    return np.rint(np.minimum(np.maximum(values, 0), 255)).astype(np.uint8)


class Watercolourist:
    """The watercolour's stages over a strokes Painter (which holds the canvas)."""

    def __init__(self, painter, radii: list[float], counts: dict[str, int], seed: int) -> None:
        self.painter = painter
        self.radii = radii
        self.counts = counts
        self.rng = np.random.default_rng([seed, 19])
        height, width = painter.paintable.shape
        self.scale = max(width, height) / 512  # washes and grain look alike at every size

    @functools.cached_property
    def goal_seen(self) -> np.ndarray:
        """(H, W, 3) uint8 the goal as seen on white (made when a stage first needs it)."""
        return self.seen(self.painter.goal)

    def seen(self, rgba: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 straight RGBA as seen on white, in bands of rows."""
        out = np.empty((*rgba.shape[:2], 3), np.uint8)

        def rows(top: int, bottom: int) -> None:
            out[top:bottom] = as_levels(seen_on_white(rgba[top:bottom]))

        by_rows(len(rgba), rows)
        return out

    @functools.cached_property
    def washable(self) -> np.ndarray:
        """Where washes and details may go: paintable, an opaque goal, and not the whites
        (where the goal is within WHITE levels of the canvas as the process found it, or
        lighter: the paper is kept)."""
        painter = self.painter
        start = self.seen(painter.frame).astype(np.int16)
        darker = channels(start - self.goal_seen, np.maximum) > WHITE
        return painter.paintable & (painter.goal[..., 3] == 255) & darker

    def steps(self, cancel: threading.Event) -> Iterator[StepLayer]:
        index = 0
        for stage in STAGES:
            count = self.counts[stage]
            if count == 0:
                continue
            for layer in getattr(self, stage)(count, index):
                if cancel.is_set():
                    return
                index += 1
                yield replace(layer, stage=stage)

    def grain(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) uint8: the paper's grain, where pigment settles (seeded specks about a pixel
        of a 512 px picture across), GRAIN_LEVELS a unit of extra pigment, none on half."""
        noise = self.rng.random(shape, dtype=np.float32) * 255
        fine = blurred(noise, max(0.5, 0.7 * self.scale))
        fine -= fine.mean()
        fine *= GRAIN_LEVELS / max(float(fine.std()), 1e-3)
        return np.clip(fine, 0, 255).astype(np.uint8)

    def bloom(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) uint8: how a wash's pigment varies over its area (seeded), 0 for 1 - BLOOM
        times its density, 255 for 1 + BLOOM."""
        height, width = shape
        cells = (
            max(2, round(height / max(height, width) * 12)),
            max(2, round(width / max(height, width) * 12)),
        )
        grid = self.rng.integers(0, 256, cells, dtype=np.uint8)
        smooth = Image.fromarray(grid, "L").resize((width, height), Image.Resampling.BICUBIC)
        return np.asarray(smooth)

    def slices(self, needed: np.ndarray, count: int, where: np.ndarray) -> np.ndarray:
        """count + 1 levels of density from 0 up: slice k goes from level k to level k + 1,
        alike, the last reaching the largest density needed."""
        top = float(np.percentile(needed[where], 99)) if where.any() else 0.0
        levels = np.linspace(0, max(top, 1e-3), count + 1)
        levels[-1] = max(levels[-1], float(needed.max(initial=0)) + 1e-3)
        return levels

    def empty(self, index: int) -> StepLayer:
        return self.painter.lay(np.zeros((0, 0, 4), np.uint8), 0, 0, index)

    def washes(self, count: int, index: int) -> Iterator[StepLayer]:
        painter = self.painter
        where = self.washable
        start = self.seen(painter.frame)
        # The darkening the goal needs, in DENSITY_LEVELS a unit: a byte a channel.
        sharp = np.zeros(start.shape, np.uint8)

        def rows(top: int, bottom: int) -> None:
            need = density(start[top:bottom], self.goal_seen[top:bottom]) * DENSITY_LEVELS
            sharp[top:bottom] = as_levels(need) * where[top:bottom, :, None]

        by_rows(len(start), rows)
        flat = channels(sharp, np.maximum)
        grain = self.grain(where.shape)
        wash = Wash(self, start, sharp, flat, grain)
        levels = self.slices(channels(wash.aims(1.0), np.maximum), count, where)
        for k in range(count):
            # The first washes are broad and loose, the later ones closer to the forms.
            breadth = WASH_BREADTH ** (1 - k / max(1, count - 1))
            laid = wash.lay(breadth, levels[k], levels[k + 1], levels[1] - levels[0])
            yield self.empty(index + k + 1) if laid is None else painter.lay(*laid, index + k + 1)

    def darkening_over(self, box, wanted: list[np.ndarray], inside: np.ndarray) -> np.ndarray:
        """The darkening layer over the canvas in `box` towards the colours `wanted` (three
        planes), inside `inside`."""
        canvas = self.painter.frame[box]
        seen = planes(canvas)
        wanted = [np.minimum(over, under, out=over) for over, under in zip(wanted, seen)]
        layer = darkening(seen, wanted)
        # Over a pixel not yet opaque the wash takes its paper with it (opaque, the colour it
        # has on white): what a translucent wash leaves there no glaze could close later.
        bare = canvas[..., 3] < 255
        if bare.any():
            for channel, over in enumerate(wanted):
                layer[..., channel][bare] = np.floor(over[bare])
            layer[bare, 3] = 255
        layer[..., 3] *= inside
        return layer

    def details(self, count: int, index: int) -> Iterator[StepLayer]:
        painter = self.painter
        where = self.washable
        seen = self.seen(painter.frame)
        total = np.zeros(where.shape, np.float32)

        def needs(top: int, bottom: int) -> None:
            need = density(seen[top:bottom], self.goal_seen[top:bottom])
            total[top:bottom] = channels(need, np.maximum) * where[top:bottom]

        by_rows(len(total), needs)
        levels = self.slices(total, count, where)
        for k in range(count):
            box = box_of(total > levels[k])
            if box is None:
                yield self.empty(index + k + 1)
                continue
            layer = self.detail_layer(box, seen, total, levels[k], levels[k + 1])
            yield painter.lay(layer, box[1].start, box[0].start, index + k + 1)

    def detail_layer(self, box, seen: np.ndarray, total: np.ndarray, low: float, high: float):
        """The layer over `box` that darkens the pixels needing more than `low` (of the
        darkening `total` from the colours `seen` to the goal) up to `high`."""
        rows, cols = box
        layer = np.zeros((rows.stop - rows.start, cols.stop - cols.start, 4), np.uint8)

        def paint(top: int, bottom: int) -> None:
            band = (slice(top, bottom), cols)
            most = total[band]
            amount = np.minimum(most, high) / np.maximum(most, 1e-6)
            wanted = []
            for channel in range(3):
                under = seen[band + (channel,)].astype(np.float32)
                need = density(under, self.goal_seen[band + (channel,)])
                wanted.append(under * np.exp(need * -amount))
            darkened = self.darkening_over(band, wanted, most > low)
            layer[top - rows.start : bottom - rows.start] = darkened

        by_rows_in(rows, paint)
        return layer

    def finish(self, count: int, index: int) -> Iterator[StepLayer]:
        yield from finish_steps(self.painter, self.radii, count, index)


def by_rows_in(rows: slice, work) -> None:
    """work(top, bottom) over bands of the rows `rows` (by_rows)."""
    by_rows(rows.stop - rows.start, lambda a, b: work(rows.start + a, rows.start + b))


class Wash:
    """How the washes are laid: each aims at the goal's darkening, averaged within the wash,
    and pools at its edge and in the paper's grain."""

    def __init__(self, artist: Watercolourist, start, sharp, flat, grain) -> None:
        self.artist = artist
        self.start = start  # (H, W, 3) uint8 the canvas, as seen on white, before the washes
        self.sharp = sharp  # (H, W, 3) uint8 the darkening the goal needs, DENSITY_LEVELS a unit
        self.flat = flat  # (H, W) uint8 its largest channel
        self.grain = grain

    def averaged(self, breadth: float, low: float) -> tuple[tuple[slice, slice], np.ndarray]:
        """The box of the pixels needing more than `low` and, over it, (h, w, 4) uint8 the
        darkening they need blurred `breadth` times the last wash's blur within them (as
        premultiplied colour, the wash being its alpha: its edge stays where the goal's is,
        as a brush stops there)."""
        inside = self.flat > low * DENSITY_LEVELS
        box = box_of(inside)
        if box is None:
            return None, None
        packed = np.empty((*inside[box].shape, 4), np.uint8)
        packed[..., :3] = self.sharp[box] * inside[box][..., None]
        packed[..., 3] = inside[box] * np.uint8(255)
        scale = self.artist.scale
        # raster.blur: a wide blur on a reduced copy, scaled back up (the same to the eye).
        return box, blur(packed, 2 * max(1.0, WASH_BLUR * scale * breadth))

    @staticmethod
    def aim(soft: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 the averaged darkening, never more than the goal's (`sharp`),
        DENSITY_LEVELS a unit."""
        mean = soft[..., :3] * (255 / np.maximum(soft[..., 3:], 1).astype(np.float32))
        return np.minimum(mean, sharp) * (soft[..., 3:] > 0)

    def aims(self, breadth: float) -> np.ndarray:
        """(H, W, 3) float32 what the whole washed area aims at, seen at `breadth`."""
        box, soft = self.averaged(breadth, 0.0)
        out = np.zeros(self.sharp.shape, np.float32)
        if box is not None:
            out[box] = self.aim(soft, self.sharp[box]) / DENSITY_LEVELS
        return out

    def lay(self, breadth: float, low: float, high: float, nominal: float):
        """(layer, x, y) of the wash over the pixels needing more than `low`, taking them to
        `high` (in density), or None where none does."""
        box, soft = self.averaged(breadth, low)
        if box is None:
            return None
        rows, cols = box
        sharp = self.sharp[box]
        height, width = sharp.shape[:2]
        # What the wash aims at (DENSITY_LEVELS a unit), and what it covers: the pixels that
        # need more than `low`, hard at its edge, where pigment pools.
        aim = np.empty(sharp.shape, np.uint8)
        cover = np.empty((height, width), np.uint8)
        span, least = high - low, 0.25 * nominal

        def first(top: int, bottom: int) -> None:
            aim[top:bottom] = as_levels(self.aim(soft[top:bottom], sharp[top:bottom]))
            total = channels(aim[top:bottom], np.maximum) * np.float32(1 / DENSITY_LEVELS)
            cover[top:bottom] = as_levels(np.minimum((total - low) / least, 1) * 255)

        by_rows(height, first)
        artist = self.artist
        spread = blurred(cover, max(1.2, EDGE_BLUR * artist.scale))
        bloom = artist.bloom((height, width))
        grain = self.grain[box]
        layer = np.zeros((height, width, 4), np.uint8)

        def paint(top: int, bottom: int) -> None:
            band = slice(top, bottom)
            total = channels(aim[band], np.maximum) * np.float32(1 / DENSITY_LEVELS)
            own = np.minimum(np.maximum(total - low, 0), span)  # what this wash lays
            share = cover[band] * np.float32(1 / 255)
            pooled = np.maximum(share - spread[band] * np.float32(1 / 255), 0) * WET
            pooled += bloom[band] * np.float32(2 * BLOOM / 255) + (1 - BLOOM)
            pooled += grain[band] * np.float32(GRAIN / GRAIN_LEVELS)
            amount = np.minimum(total, low) + own * pooled
            # Each channel darkens by its share of the pixel's darkening (its hue).
            amount /= np.maximum(total, 1e-6) * DENSITY_LEVELS
            start = self.start[rows][band, cols]
            wanted = [start[..., c] * np.exp(aim[band][..., c] * -amount) for c in range(3)]
            on_canvas = (slice(rows.start + top, rows.start + bottom), cols)
            layer[band] = artist.darkening_over(on_canvas, wanted, share > 0)

        by_rows(height, paint)
        return layer, cols.start, rows.start

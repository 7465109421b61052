"""The illustrator's process (the strokes engine's `style` "illustration").

An illustrator sketches the picture loosely, inks clean lines over the sketch, fills flat
colours under the lines, shades each colour region (shadows, then lights), then renders the
details and finishes. Each stage here is made from the goal with no weights:

- sketch: light, rough pencil strokes along the goal's strong edges (the brush machinery's
  strokes, traced along the edge, shaken a little);
- lines: the goal's contours as an extended difference of Gaussians (XDoG; Winnemoeller, 2012)
  inked dark in the local colour;
- flats: the goal, smoothed, in a few colours (Pillow's quantizer), each colour region filled
  under the lines with the goal's mean over its pixels nearby (local_colours), largest first;
- shading: in each flat region, the pixels the goal has darker (then lighter) than the flat
  take that region's shadow (light) colour: cel shading, lines kept on top;
- details and finish: the painterly engine's detail brushes and glazes (strokes.Painter), which
  end on the goal.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from paintstep.process import StepLayer
from PIL import Image, ImageFilter

from . import band_render
from .brush import Strokes
from .finishing import detail_steps, finish_steps
from .raster import gaussian_blur, spread
from .step_deal import split_by_progress
from .step_deal import stage_counts as deal_stages

STAGES = ("sketch", "lines", "flats", "shading", "details", "finish")
# How many steps each stage gets, in proportion; with fewer steps than stages, the stages
# kept are those earliest in this order (the finish always, last).
WEIGHTS = {"sketch": 1.0, "lines": 1.5, "flats": 2.0, "shading": 2.0, "details": 2.5, "finish": 2}
KEPT = ("finish", "flats", "lines", "shading", "sketch", "details")
FLAT_COLOURS = 16  # colours the flats are quantized to
INK = 0.3  # a line's colour: the local colour this dark
LINE_FROM = 6.0  # levels of luminance a difference of Gaussians needs to ink a line
PENCIL = (96, 92, 100)  # the sketch's graphite, before its opacity
SKETCH_OPACITY = 0.35
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # luminance of red, green and blue (BT.601)


def stage_counts(steps: int) -> dict[str, int]:
    """Steps for each stage (0 for a stage left out), in total `steps`."""
    return deal_stages(steps, WEIGHTS, KEPT)


def luminance(rgba: np.ndarray) -> np.ndarray:
    """(H, W) float32 luminance of the colour as seen on white paper, 0-255."""
    alpha = rgba[..., 3:].astype(np.float32) / 255
    seen = rgba[..., :3] * alpha + 255 * (1 - alpha)
    return seen @ LUMA


def blurred(values: np.ndarray, sigma: float) -> np.ndarray:
    """A float (H, W) map of 0-255 values blurred (Pillow, 8 bits a level: fine for them)."""
    grey = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return np.asarray(grey.filter(ImageFilter.GaussianBlur(sigma)), np.float32)


def line_art(light: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) float32 0-1: how much ink each pixel of the line drawing of a picture of this
    luminance takes (XDoG: the dark side of a difference of Gaussians, softly thresholded)."""
    sigma = max(0.8, scale)
    edge = blurred(light, 1.6 * sigma) - blurred(light, sigma)  # > 0 on an edge's dark side
    return np.clip((edge - LINE_FROM) / 12.0, 0.0, 1.0)


def strong_edges(light: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Where a picture of this luminance has strong edges (a boolean map: its steepest tenth,
    at least 8 levels a pixel of a 512 px picture), and the luminance gradient (gy, gx)."""
    smooth = blurred(light, max(1.0, scale))
    if min(smooth.shape) < 2:  # np.gradient needs two pixels a side: a 1 px strip has none
        return np.zeros(smooth.shape, bool), np.zeros((2, *smooth.shape), np.float32)
    gy, gx = np.gradient(smooth)
    # Per pixel of a 512 px picture: the same edge is `scale` times less steep a pixel when
    # the picture is `scale` times larger, and should not fall under the floor for it.
    magnitude = np.hypot(gx, gy) * max(1.0, scale)
    level = max(8.0, float(np.percentile(magnitude[::2, ::2], 90)))
    return magnitude > level, np.stack([gy, gx])


def sketch_strokes(
    edges: np.ndarray, gradient: np.ndarray, where: np.ndarray, scale: float, rng
) -> Strokes:
    """Light pencil strokes along the strong edges, a few brush widths long, shaken."""
    gy, gx = gradient
    edges = edges & where
    spacing = max(3, int(round(6 * scale)))
    height, width = edges.shape
    ys, xs = np.nonzero(edges[::spacing, ::spacing])
    ys, xs = ys * spacing, xs * spacing
    if len(xs) == 0:
        return Strokes.none()
    points = 6
    path = np.empty((len(xs), points, 2), np.float32)
    position = np.stack([xs, ys], axis=1).astype(np.float32)
    step = 2.0 * scale + 1.0
    previous = None
    for k in range(points):
        path[:, k] = position
        ix = np.clip(position[:, 0].astype(int), 0, width - 1)
        iy = np.clip(position[:, 1].astype(int), 0, height - 1)
        tangent = np.stack([-gy[iy, ix], gx[iy, ix]], axis=1)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-6)
        if previous is not None:
            tangent *= np.where((tangent * previous).sum(axis=1) < 0, -1.0, 1.0)[:, None]
        position = position + step * tangent
        previous = tangent
    path += rng.normal(0, 0.6 * scale, path.shape).astype(np.float32)  # a loose hand
    np.clip(path[..., 0], 0, width - 1, out=path[..., 0])
    np.clip(path[..., 1], 0, height - 1, out=path[..., 1])
    colour = np.tile(
        np.array([*(c / 255 for c in PENCIL), SKETCH_OPACITY], np.float32), (len(xs), 1)
    )
    colour[:, 3] *= rng.uniform(0.7, 1.0, len(xs)).astype(np.float32)
    radius = np.full(len(xs), max(0.6, 0.7 * scale), np.float32)
    return Strokes(path, np.full(len(xs), points, np.int64), colour, radius)


def flat_regions(goal: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) region index of each pixel, and (regions, 3) float32 the mean goal colour of
    each: the goal smoothed and quantized, its palette chosen on a copy of at most 512 px."""
    smooth = gaussian_blur(np.ascontiguousarray(goal), max(1.5, 2 * scale))
    picture = Image.fromarray(np.ascontiguousarray(smooth[..., :3]), "RGB")
    small = picture.reduce(max(1, max(picture.size) // 512))
    palette = small.quantize(FLAT_COLOURS, method=Image.Quantize.MEDIANCUT)
    index = np.asarray(picture.quantize(palette=palette, dither=Image.Dither.NONE))
    count = int(index.max()) + 1
    flat = index.reshape(-1)
    sizes = np.bincount(flat, minlength=count).astype(np.float64)
    sums = np.stack([np.bincount(flat, goal[..., c].reshape(-1), count) for c in range(3)], 1)
    return index.astype(np.int32), (sums / np.maximum(sizes, 1)[:, None]).astype(np.float32)


def paint_illustration(
    painter, radii: list[float], steps: int, seed: int, cancel: threading.Event
) -> Iterator[StepLayer]:
    """The steps of the illustrator's process over the painter's canvas (strokes.Painter)."""
    yield from Illustrator(painter, radii, stage_counts(steps), seed).steps(cancel)


class Illustrator:
    """The illustration's stages over a strokes Painter (which holds the canvas)."""

    def __init__(self, painter, radii: list[float], counts: dict[str, int], seed: int) -> None:
        self.painter = painter
        self.radii = radii
        self.counts = counts
        self.rng = np.random.default_rng([seed, 18])
        height, width = painter.paintable.shape
        self.scale = max(width, height) / 512  # the sketch and lines at 512 px are 1 px wide
        self.ink = np.zeros((height, width), np.float32)  # the lines as they are inked

    @functools.cached_property
    def light(self) -> np.ndarray:
        """The goal's luminance (for the stages that use it: a short process has none)."""
        return luminance(self.painter.goal)

    @functools.cached_property
    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """The goal's strong edges and its luminance gradient (strong_edges)."""
        return strong_edges(self.light, self.scale)

    def layer_from(self, wanted: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, int, int]:
        """A layer that turns the canvas into `wanted` (opaque straight RGBA) where `where`,
        cropped to those pixels' box."""
        rows = np.flatnonzero(where.any(axis=1))
        cols = np.flatnonzero(where.any(axis=0))
        if rows.size == 0:
            return np.zeros((0, 0, 4), np.uint8), 0, 0
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        layer = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
        inside = where[y0:y1, x0:x1]
        layer[inside] = wanted[y0:y1, x0:x1][inside]
        return layer, int(x0), int(y0)

    def inked(self, colour: np.ndarray) -> np.ndarray:
        """The (H, W, 3) colour with the lines inked over it (what a flat or a shade under the
        lines shows), opaque straight RGBA; in integers, a few bytes a pixel at 4096 px."""
        goal = self.painter.goal
        mix = np.rint(self.ink * 255).astype(np.uint16)[..., None]
        ink = goal[..., :3].astype(np.uint16) * np.uint16(round(INK * 256)) >> np.uint16(8)
        under = np.clip(np.rint(colour), 0, 255).astype(np.uint16)
        out = np.empty_like(goal)
        out[..., :3] = (under * (255 - mix) + ink * mix + 127) // 255
        out[..., 3] = 255
        return out

    def steps(self, cancel: threading.Event) -> Iterator[StepLayer]:
        index = 0
        painter = self.painter
        where = painter.paintable & (painter.goal[..., 3] == 255)
        for stage in STAGES:
            count = self.counts[stage]
            if count == 0:
                continue
            for layer in getattr(self, stage)(where, count, index):
                if cancel.is_set():
                    return
                index += 1
                yield replace(layer, stage=stage)

    def sketch(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        strokes = sketch_strokes(*self.edges, where, self.scale, self.rng)
        order = self.rng.permutation(len(strokes))
        bounds = np.linspace(0, len(strokes), count + 1).astype(int)
        height, width = where.shape
        for part in range(count):
            batch = strokes.take(order[bounds[part] : bounds[part + 1]])
            x0, y0, x1, y1 = batch.bounds(width, height)
            layer = band_render.render_layer(batch, x0, y0, x1 - x0, y1 - y0)
            np.multiply(layer[..., 3], where[y0:y1, x0:x1], out=layer[..., 3])
            yield self.painter.lay(layer, x0, y0, index + part + 1)

    def lines(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        # Clean lines: the contours where the goal has strong edges, not its texture.
        contours = self.edges[0]
        for _ in range(max(1, round(1.5 * self.scale))):
            contours = spread(contours, np.maximum)
        ink = line_art(self.light, self.scale) * (where & contours)
        goal = self.painter.goal
        height = where.shape[0]
        for part in range(count):  # inked from the top down
            top, bottom = part * height // count, (part + 1) * height // count
            rows = slice(top, bottom)
            self.ink[rows] = ink[rows]
            layer = np.zeros((bottom - top, where.shape[1], 4), np.uint8)
            layer[..., :3] = np.rint(goal[rows, :, :3] * INK)
            layer[..., 3] = np.rint(ink[rows] * 255)
            yield self.painter.lay(layer, 0, top, index + part + 1)

    def flats(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        regions, colours = flat_regions(self.painter.goal, self.scale)
        self.regions, self.colours = regions, colours
        sizes = np.bincount(regions[where], minlength=len(colours))
        order = [r for r in np.argsort(-sizes) if sizes[r] > 0]
        wanted = self.inked(local_colours(self.painter.goal, regions, colours))
        bounds = split_by_progress(sizes[order].astype(np.float64), count, 1e-3)
        for part in range(count):
            chosen = np.zeros(len(colours), bool)
            chosen[order[bounds[part] : bounds[part + 1]]] = True
            layer, x, y = self.layer_from(wanted, where & chosen[regions])
            yield self.painter.lay(layer, x, y, index + part + 1)

    def shading(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        """Shadows first, then lights: in each flat region, the pixels that the goal has darker
        (lighter) than the flat take the region's shadow (light) colour, a region at a time."""
        goal, regions, many = self.painter.goal, self.regions, len(self.colours)
        flat_light = self.colours @ LUMA
        tone = blurred(self.light, max(1.0, 2 * self.scale)) - flat_light[regions]
        shadow, lit = (tone < -SHADE) & where, (tone > SHADE) & where
        # Each (side, region) is a group: shadows 0..many-1, lights many..2 many-1.
        group = np.where(shadow, regions, np.where(lit, regions + many, -1))
        colours = np.concatenate(
            [
                region_means(goal, regions, shadow, self.colours),
                region_means(goal, regions, lit, self.colours),
            ]
        )
        wanted = self.inked(local_colours(goal, group, colours))
        sizes = np.bincount(group[group >= 0], minlength=2 * many)
        order = [g for g in np.argsort(-sizes[:many]) if sizes[g] > 0]
        order += [many + g for g in np.argsort(-sizes[many:]) if sizes[many + g] > 0]
        bounds = split_by_progress(sizes[order].astype(np.float64), count, 1e-3)
        for run in range(count):
            chosen = np.zeros(2 * many + 1, bool)  # the last: no group
            chosen[order[bounds[run] : bounds[run + 1]]] = True
            layer, x, y = self.layer_from(wanted, chosen[group])
            yield self.painter.lay(layer, x, y, index + run + 1)

    def details(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        yield from detail_steps(self.painter, self.radii, count, index)

    def finish(self, where: np.ndarray, count: int, index: int) -> Iterator[StepLayer]:
        yield from finish_steps(self.painter, self.radii, count, index)


SHADE = 10  # levels of luminance: a pixel this much darker or lighter than its flat is shaded


def region_means(
    goal: np.ndarray, regions: np.ndarray, inside: np.ndarray, flats: np.ndarray
) -> np.ndarray:
    """(regions, 3) the goal's mean colour over each region's pixels inside `inside`, or the
    region's flat colour (`flats`) where it has none."""
    picked = regions[inside]
    count = len(flats)
    sizes = np.bincount(picked, minlength=count).astype(np.float64)
    sums = np.stack([np.bincount(picked, goal[..., c][inside], count) for c in range(3)], 1)
    return np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], flats)


TILES = 6  # local colours are taken in about this many tiles along the longer side


def local_colours(goal: np.ndarray, labels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each pixel's colour as the goal's mean over the pixels of its label
    near it, not over the whole picture (hair and a flag in one palette colour keep their own
    colours): the label's means in tiles, blended between tile centres so that no tile edge
    shows, each tile's mean drawn towards the label's whole mean (`means`) when it has few of
    its pixels. A pixel labelled -1 belongs to no label: it counts in no mean, and its colour
    is any label's."""
    height, width = labels.shape
    side = max(height, width) / TILES
    rows, cols = max(1, round(height / side)), max(1, round(width / side))
    tile_y = np.minimum(np.arange(height) * rows // height, rows - 1)
    tile_x = np.minimum(np.arange(width) * cols // width, cols - 1)
    count = len(means)
    labelled = labels >= 0
    labels = np.maximum(labels, 0)
    cell = labels.astype(np.int32) * np.int32(rows) + tile_y.astype(np.int32)[:, None]
    cell *= np.int32(cols)
    cell += tile_x.astype(np.int32)[None, :]
    every = labelled.all()
    flat = cell.reshape(-1) if every else cell[labelled]
    size = count * rows * cols
    pixels = np.bincount(flat, minlength=size).astype(np.float64)
    prior = 0.05 * height * width / (rows * cols)  # a tile's worth of the whole mean, in part
    local = np.empty((size, 3), np.float32)
    whole = np.repeat(np.asarray(means, np.float64), rows * cols, axis=0)
    for c in range(3):
        channel = goal[..., c].reshape(-1) if every else goal[..., c][labelled]
        sums = np.bincount(flat, channel, size)
        local[:, c] = (sums + prior * whole[:, c]) / (pixels + prior)
    local = local.reshape(count, rows, cols, 3)
    # Between tile centres: each pixel's place on the grid of centres, and its four corners.
    fy = np.clip((np.arange(height) + 0.5) * rows / height - 0.5, 0, rows - 1)
    fx = np.clip((np.arange(width) + 0.5) * cols / width - 0.5, 0, cols - 1)
    y0, x0 = fy.astype(int), fx.astype(int)
    y1, x1 = np.minimum(y0 + 1, rows - 1), np.minimum(x0 + 1, cols - 1)
    wy, wx = (fy - y0).astype(np.float32), (fx - x0).astype(np.float32)
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, 256):  # bands of rows: a few MB at a time at 4096 px
        band = slice(top, min(top + 256, height))
        label = labels[band]
        a = local[label, y0[band, None], x0[None, :]]
        b = local[label, y0[band, None], x1[None, :]]
        c = local[label, y1[band, None], x0[None, :]]
        d = local[label, y1[band, None], x1[None, :]]
        across = wx[None, :, None]
        upper, lower = a + (b - a) * across, c + (d - c) * across
        mixed = upper + (lower - upper) * wy[band, None, None]
        out[band] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out

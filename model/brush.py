"""Brush strokes and how they are drawn: curved, anti-aliased, semi-opaque, with skia."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import skia
from paintstep.process import is_opaque
from PIL import Image


@dataclass
class Strokes:
    """A batch of strokes, one row each.

    points: (n, K, 2) float32 x, y along each stroke; only the first `count` are used.
    color: (n, 4) float32 straight RGBA in 0..1, alpha being the stroke's opacity.
    radius: (n,) float32 half the brush width in px.
    """

    points: np.ndarray
    count: np.ndarray
    color: np.ndarray
    radius: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index: np.ndarray | slice) -> Strokes:
        return Strokes(self.points[index], self.count[index], self.color[index], self.radius[index])

    def enlarged(self, factor: int, shape: tuple[int, int]) -> Strokes:
        """These strokes, planned on a copy reduced `factor` times, on the full (height, width)
        canvas: each point at the centre of the pixels its reduced pixel stood for."""
        height, width = shape
        points = self.points * factor + (factor - 1) / 2
        np.clip(points[..., 0], 0, width - 1, out=points[..., 0])
        np.clip(points[..., 1], 0, height - 1, out=points[..., 1])
        return Strokes(points, self.count, self.color, self.radius * factor)

    def paint_amount(self) -> np.ndarray:
        """Roughly how many pixels' worth of paint each stroke lays down."""
        steps = np.diff(self.points, axis=1)
        lengths = np.hypot(steps[..., 0], steps[..., 1])
        used = np.arange(lengths.shape[1])[None, :] < (self.count[:, None] - 1)
        length = (lengths * used).sum(axis=1)
        width = 2.0 * self.radius
        return (length + width) * width * self.color[:, 3]

    def reaching(self, top: float, bottom: float) -> np.ndarray:
        """Indices of the strokes that can touch rows top..bottom."""
        pad = self.radius + 2.0
        ys = self.points[..., 1]
        return np.flatnonzero((ys.max(axis=1) + pad >= top) & (ys.min(axis=1) - pad < bottom))

    def bounds(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the canvas area these strokes can touch, clipped to it."""
        if len(self) == 0:
            return (0, 0, 0, 0)
        pad = self.radius[:, None] + 2.0
        lo = (self.points.min(axis=1) - pad).min(axis=0)
        hi = (self.points.max(axis=1) + pad).max(axis=0)
        x0, y0 = max(0, int(np.floor(lo[0]))), max(0, int(np.floor(lo[1])))
        x1, y1 = min(width, int(np.ceil(hi[0]))), min(height, int(np.ceil(hi[1])))
        return (x0, y0, max(x0, x1), max(y0, y1))


def draw_strokes(canvas: skia.Canvas, strokes: Strokes) -> None:
    """Draw strokes in order with source-over blending on a premultiplied canvas."""
    paint = skia.Paint(
        AntiAlias=True,
        Style=skia.Paint.kStroke_Style,
        StrokeCap=skia.Paint.kRound_Cap,
        StrokeJoin=skia.Paint.kRound_Join,
    )
    rgba = np.clip(np.rint(strokes.color * 255), 0, 255).astype(np.int64)
    argb = ((rgba[:, 3] << 24) | (rgba[:, 0] << 16) | (rgba[:, 1] << 8) | rgba[:, 2]).tolist()
    widths = (2.0 * strokes.radius).tolist()
    counts = strokes.count.tolist()
    used = np.arange(strokes.points.shape[1])[None, :] < strokes.count[:, None]
    xy = strokes.points[used].tolist()  # only the points in use, stroke after stroke
    first = 0
    for i, count in enumerate(counts):
        path = skia.Path()
        path.moveTo(*xy[first])
        if count == 1:
            path.lineTo(*xy[first])  # a dab: a zero-length line with round caps
        for point in xy[first + 1 : first + count]:
            path.lineTo(*point)
        first += count
        paint.setColor(argb[i])
        paint.setStrokeWidth(widths[i])
        canvas.drawPath(path, paint)


def raster_surface(pixels: np.ndarray) -> skia.Surface:
    """A skia surface drawing straight into `pixels`, (H, W, 4) premultiplied RGBA uint8.

    The surface does not keep `pixels` alive: the caller must hold on to it while drawing.
    """
    return skia.Surface(
        pixels,
        colorType=skia.ColorType.kRGBA_8888_ColorType,
        alphaType=skia.AlphaType.kPremul_AlphaType,
    )


def render_layer(strokes: Strokes, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The strokes on a clear layer of this size placed at (x0, y0), as straight RGBA."""
    straight = np.zeros((height, width, 4), np.uint8)
    render_rows(strokes, x0, y0, straight)
    return straight


def render_rows(
    strokes: Strokes,
    x0: int,
    y0: int,
    out: np.ndarray,
    top: int = 0,
    bottom: int | None = None,
    clip: bool = False,
) -> None:
    """Draw into rows top..bottom of `out`, a clear straight-RGBA layer placed at (x0, y0), what
    the strokes paint there.

    Only the strokes that reach those rows are drawn, on a surface the size of the whole layer
    (skia's anti-aliasing depends on the surface's edges); `clip` keeps the drawing to those
    rows, which is much less work for wide brushes but draws their edges a little
    differently from an unclipped drawing.
    """
    height, width = out.shape[:2]
    bottom = height if bottom is None else bottom
    strokes = strokes.take(strokes.reaching(y0 + top, y0 + bottom))
    if not (width and bottom > top and len(strokes)):
        return
    premultiplied = scratch(height, width, top, bottom)  # the surface draws into it
    surface = raster_surface(premultiplied)
    canvas = surface.getCanvas()
    if clip:
        canvas.clipRect(skia.Rect(0, top, width, bottom))
    canvas.translate(-x0, -y0)
    draw_strokes(canvas, strokes)
    info = skia.ImageInfo.Make(
        width, bottom - top, skia.ColorType.kRGBA_8888_ColorType, skia.AlphaType.kUnpremul_AlphaType
    )
    rows = out[top:bottom]
    surface.readPixels(skia.Pixmap(info, rows, width * 4), 0, top)


_scratch = threading.local()


def scratch(height: int, width: int, top: int = 0, bottom: int | None = None) -> np.ndarray:
    """A (height, width, 4) buffer clear in rows top..bottom, reused from call to call on this
    thread: a fresh one at 4096 px is 64 MB the kernel hands over page by page."""
    size = height * width * 4
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < size or buffer.size > 4 * max(size, 1 << 22):
        buffer = _scratch.buffer = np.zeros(size, np.uint8)
        pixels = buffer[:size].reshape(height, width, 4)
    else:
        pixels = buffer[:size].reshape(height, width, 4)
        pixels[top:bottom].fill(0)
    return pixels


def premultiply(rgba: np.ndarray) -> np.ndarray:
    if is_opaque(rgba):
        return rgba  # opaque: already premultiplied
    return np.asarray(Image.fromarray(rgba, "RGBA").convert("RGBa"))

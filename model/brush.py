"""Brush strokes and how they are drawn: curved, anti-aliased, semi-opaque, with skia."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import skia

from .bristles import hair_paints


@dataclass
class Strokes:
    """A batch of strokes, one row each.

    points: (n, K, 2) float32 x, y along each stroke; only the first `count` are used.
    color: (n, 4) float32 straight RGBA in 0..1, alpha being the stroke's opacity.
    radius: (n,) float32 half the brush width in px.
    bristles: how much the brush's hairs show in the strokes (bristles.py), 0 for none.
    """

    points: np.ndarray
    count: np.ndarray
    color: np.ndarray
    radius: np.ndarray
    bristles: float = 0.0

    @classmethod
    def none(cls) -> Strokes:
        """No strokes at all."""
        points, colour = np.zeros((0, 1, 2), np.float32), np.zeros((0, 4), np.float32)
        return cls(points, np.zeros(0, np.int64), colour, np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.count)

    def take(self, index: np.ndarray | slice) -> Strokes:
        return Strokes(
            self.points[index],
            self.count[index],
            self.color[index],
            self.radius[index],
            self.bristles,
        )

    def enlarged(self, factor: int, shape: tuple[int, int]) -> Strokes:
        """These strokes, planned on a copy reduced `factor` times, on the full (height, width)
        canvas: each point at the centre of the pixels its reduced pixel stood for."""
        height, width = shape
        points = self.points * factor + (factor - 1) / 2
        np.clip(points[..., 0], 0, width - 1, out=points[..., 0])
        np.clip(points[..., 1], 0, height - 1, out=points[..., 1])
        return Strokes(points, self.count, self.color, self.radius * factor, self.bristles)

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
    """Draw strokes in order with source-over blending on a premultiplied canvas.

    Each stroke is its outline, filled: a brush pressed on full, carried along and lifted
    off, so its end tapers (pressure); both ends are round, and a dab (one point, or points
    that do not move) is a disc. Its sides are smooth curves (quadratic, through the
    midpoints between the side's points).
    """
    paint = skia.Paint(AntiAlias=True)
    rgba = np.clip(np.rint(strokes.color * 255), 0, 255).astype(np.int64)
    argb = ((rgba[:, 3] << 24) | (rgba[:, 0] << 16) | (rgba[:, 1] << 8) | rgba[:, 2]).tolist()
    left, left_mid, right, right_mid, end, start = outlines(strokes)
    dabs = np.concatenate([strokes.points[:, 0], strokes.radius[:, None]], axis=1).tolist()
    still = np.ptp(strokes.points, axis=1).max(axis=1, initial=0.0) == 0 if len(strokes) else []
    hairs = hair_paints(strokes.points, strokes.count, strokes.radius, argb, strokes.bristles)
    for i, count in enumerate(strokes.count.tolist()):
        if count < 1:
            continue
        path = skia.Path()
        if count == 1 or still[i]:
            path.addCircle(*dabs[i])
        else:
            on, mid, cap = left[i], left_mid[i], end[i]
            path.moveTo(on[0], on[1])
            for j in range(2, 2 * count - 2, 2):  # the left side, point after point
                path.quadTo(on[j], on[j + 1], mid[j], mid[j + 1])
            path.lineTo(on[2 * count - 2], on[2 * count - 1])
            path.conicTo(cap[0], cap[1], cap[2], cap[3], ROUND)  # two quarter circles
            path.conicTo(cap[4], cap[5], cap[6], cap[7], ROUND)
            on, mid, cap = right[i], right_mid[i], start[i]
            for j in range(2 * count - 4, 0, -2):  # the right side, back to the start
                path.quadTo(on[j], on[j + 1], mid[j], mid[j + 1])
            path.lineTo(on[0], on[1])
            path.conicTo(cap[0], cap[1], cap[2], cap[3], ROUND)
            path.conicTo(cap[4], cap[5], cap[6], cap[7], ROUND)
            path.close()
        if hairs[i] is not None:
            canvas.drawPath(path, hairs[i])
            continue
        paint.setColor(argb[i])
        canvas.drawPath(path, paint)


ROUND = float(np.sqrt(0.5))  # the conic weight of a quarter circle


def pressure(t: np.ndarray) -> np.ndarray:
    """How wide (0-1 of the brush) a stroke is at t, 0 at its start to 1 at its end."""
    return np.minimum(1.0, 0.8 + 1.5 * t) * np.minimum(1.0, 0.35 + 1.9 * (1.0 - t))


def outlines(strokes: Strokes) -> tuple[list, ...]:
    """The outlines of the strokes, each as flat [x, y, x, y, ...] lists, one per stroke:
    the left and right sides point by point, the midpoints between a point and the next
    (towards the end on the left, towards the start on the right), and the end and start
    caps as (corner, point, corner, point) of two quarter circles."""
    n, k = strokes.points.shape[:2]
    if n == 0:
        return ([],) * 6
    # Points past a stroke's count repeat its last one, and so do their direction and width.
    last = np.maximum(strokes.count - 1, 0)[:, None]
    used = np.minimum(np.arange(k)[None, :], last)
    points = np.take_along_axis(strokes.points.astype(np.float64), used[..., None], axis=1)
    along = np.gradient(points, axis=1) if k > 1 else np.zeros_like(points)
    along = np.take_along_axis(along, used[..., None], axis=1)
    along /= np.maximum(np.linalg.norm(along, axis=2, keepdims=True), 1e-9)
    t = np.minimum(np.arange(k)[None, :] / np.maximum(last, 1), 1.0)
    width = (strokes.radius[:, None] * pressure(t))[..., None]
    offset = np.stack([-along[..., 1], along[..., 0]], axis=2) * width
    ahead = along * width
    left, right = points + offset, points - offset
    left_mid = (left + np.roll(left, -1, axis=1)) / 2
    right_mid = (right + np.roll(right, 1, axis=1)) / 2
    tip, tail = np.arange(n), last[:, 0]
    end = np.stack(
        [
            left[tip, tail] + ahead[tip, tail],
            points[tip, tail] + ahead[tip, tail],
            right[tip, tail] + ahead[tip, tail],
            right[tip, tail],
        ],
        axis=1,
    )
    start = np.stack(
        [
            right[:, 0] - ahead[:, 0],
            points[:, 0] - ahead[:, 0],
            left[:, 0] - ahead[:, 0],
            left[:, 0],
        ],
        axis=1,
    )
    return tuple(
        part.reshape(n, -1).tolist() for part in (left, left_mid, right, right_mid, end, start)
    )


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


def forget_scratch() -> None:
    """Give back this thread's scratch surface (up to 1 GB for a 16384 px layer)."""
    _scratch.buffer = None


def scratch(height: int, width: int, top: int = 0, bottom: int | None = None) -> np.ndarray:
    """A (height, width, 4) buffer clear in rows top..bottom, reused from call to call on this
    thread: a fresh one at 4096 px is 64 MB the kernel hands over page by page."""
    size = height * width * 4
    buffer = getattr(_scratch, "buffer", None)
    fresh = buffer is None or buffer.size < size or buffer.size > 4 * max(size, 1 << 22)
    if fresh:
        buffer = _scratch.buffer = np.zeros(size, np.uint8)
    pixels = buffer[:size].reshape(height, width, 4)
    if not fresh:
        pixels[top:bottom].fill(0)
    return pixels

"""One brush size's strokes for the strokes engine: where they start, how they grow along the
picture's contours (Hertzmann, 1998), their colours, what each brings, and their order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .brush import Strokes
from .raster import GLAZE, box_reduce, cell_max, colour_distance, squared_distance

MAX_POINTS = 12  # control points per stroke, one brush radius apart
MIN_POINTS = 3
CURVATURE = 0.7  # 1 follows the contours exactly, lower values smooth the strokes
# A stroke is laid only when it brings the canvas closer to the goal by at least this share of
# what it changes: a painter does not churn a passage that is nearly right.
WORTH = 0.3
COLOUR_LIMIT = 0.4  # a stroke ends where the goal's colour is this far (0-2) from its own
DETAIL_COLOUR_LIMIT = 0.12  # and a detail stroke sooner: its colour is right all along
DETAIL_RADIUS = 2.0  # px: brushes this small paint detail, not shapes
# Where a stroke is judged across its path, in brush radii from the middle: the outer samples
# see what its edges smear (a wide stroke over a thin bright line, a dab over a star).
ACROSS = (0.0, 0.5, -0.5, 0.9, -0.9)


def plan_level(
    canvas: np.ndarray,
    reference: np.ndarray,
    paintable: np.ndarray,
    radius: float,
    jitter: float,
    rng: np.random.Generator,
    threshold: float,
    spacing: float,
    opacity: float,
    detail: bool,
) -> tuple[Strokes, np.ndarray, np.ndarray]:
    """Strokes of one brush size, wherever the canvas is still far from the reference, and how
    much closer each brings it.

    `detail` brushes go only where a pixel is visibly off and carry the goal's colour unvaried.
    """
    # A cell needs this brush when the canvas is off at the brush's own scale: a smooth block-in
    # already right in its large shapes gets no big strokes, only the detail it lacks.
    size = max(2, int(round(spacing)))
    starts = np.zeros((0, 2), np.int64)
    if paintable.any():  # (detail brushes on a picture without fine detail: nowhere)
        error = squared_distance(canvas, reference)
        error *= paintable
        if detail:
            # Detail brushes go only where some pixel is still visibly off: what is closer
            # than that is left to the glazes.
            wanted = cell_max(error, size) > GLAZE**2
        else:
            seen = colour_distance(
                box_reduce(canvas, "RGBa", size), box_reduce(reference, "RGBa", size)
            )
            seen *= box_reduce(paintable.astype(np.uint8) * 255, "L", size) / np.float32(255)
            wanted = seen > threshold
        starts = worst_cells(error, wanted, size)
    if len(starts) == 0:
        nothing = np.zeros(0, np.float32)
        return Strokes.none(), nothing, nothing
    start_color = reference[starts[:, 1], starts[:, 0]].astype(np.float32) / 255.0
    rgba = np.concatenate(
        [start_color[:, :3] / np.maximum(start_color[:, 3:], 1e-6), start_color[:, 3:]], 1
    )
    limit = DETAIL_COLOUR_LIMIT if detail else COLOUR_LIMIT
    points, count = trace_strokes(starts, rgba, canvas, reference, paintable, radius, rng, limit)
    # The brushful is mixed for the whole stroke: the goal's mean colour along its path.
    color = path_mean(reference, points, count) / 255.0
    straight = color[:, :3] / np.maximum(color[:, 3:], 1e-6)
    # A painter mixes each brushful a little differently: vary value and hue per stroke.
    jitter = 0.0 if detail else jitter
    straight = straight * np.exp(rng.normal(0, jitter, (len(starts), 1)))
    straight += rng.normal(0, jitter / 2, (len(starts), 1))
    # Hue varies only as much as the colour has hue: greys stay grey.
    chroma = straight.max(axis=1, keepdims=True) - straight.min(axis=1, keepdims=True)
    straight += rng.normal(0, jitter, straight.shape) * np.minimum(chroma * 2, 0.5)
    # Reflected into 0-1 rather than clipped, so that blacks and whites vary too.
    straight = 1 - np.abs(1 - np.abs(straight))
    opacity = opacity * rng.uniform(0.85, 1.0, len(starts))
    opacity = opacity * color[:, 3]
    rgba = np.concatenate([straight, opacity[:, None]], axis=1).astype(np.float32)
    strokes = Strokes(points, count, rgba, np.full(len(starts), radius, np.float32))
    gain, change = improvement(strokes, canvas, reference)
    keep = np.flatnonzero(gain > WORTH * change)
    strokes = strokes.take(keep)
    # How much closer a stroke brings the picture: the pixels it covers times how much closer
    # each gets, in the units of colour_distance.
    samples = len(ACROSS) * strokes.count.astype(np.float32)
    area = strokes.paint_amount() / strokes.color[:, 3].clip(1e-6)
    return strokes, gain[keep], area * gain[keep] / samples / 255


def as_painted(strokes: Strokes, progress: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each stroke's progress when the strokes are laid in this order: where earlier strokes
    of the same pass already put paint, a stroke gains only what they left."""
    height, width = shape
    cell = max(1.0, float(strokes.radius.max(initial=1.0)))
    grid_h, grid_w = int(np.ceil(height / cell)), int(np.ceil(width / cell))
    left = np.ones((grid_h, grid_w))
    out = np.empty(len(strokes))
    for i in range(len(strokes)):
        points = strokes.points[i, : strokes.count[i]]
        cx = np.clip((points[:, 0] / cell).astype(np.int64), 0, grid_w - 1)
        cy = np.clip((points[:, 1] / cell).astype(np.int64), 0, grid_h - 1)
        out[i] = progress[i] * left[cy, cx].mean()
        left[cy, cx] *= 1 - strokes.color[i, 3]
    return out


def path_mean(image: np.ndarray, points: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(n, channels) mean of the image at the used points of each stroke."""
    height, width = image.shape[:2]
    ix = np.clip(np.rint(points[..., 0]).astype(np.int64), 0, width - 1)
    iy = np.clip(np.rint(points[..., 1]).astype(np.int64), 0, height - 1)
    used = (np.arange(points.shape[1])[None, :] < count[:, None]).astype(np.float32)
    return (image[iy, ix] * used[..., None]).sum(axis=1) / count[:, None]


def improvement(
    strokes: Strokes, canvas: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How much each stroke brings the canvas closer to the reference, and how much it changes.

    Judged along each stroke's path and along both of its edges, so that a wide stroke across a
    sharp change of colour counts what it smears.
    """
    height, width = canvas.shape[:2]
    points = strokes.points
    if points.shape[1] == 1:
        points = np.repeat(points, 2, axis=1)  # one point: judged as a dab, below
    heading = np.diff(points, axis=1, append=points[:, -1:] + points[:, -1:] - points[:, -2:-1])
    # A stroke's last point (its next one repeats it) keeps the heading before it, and a dab,
    # which has none, is judged across as well: else only its centre would be, always better.
    length = np.linalg.norm(heading, axis=2, keepdims=True)
    for k in range(1, points.shape[1]):
        heading[:, k] = np.where(length[:, k] > 1e-6, heading[:, k], heading[:, k - 1])
        length[:, k] = np.maximum(length[:, k], length[:, k - 1])
    heading[length[..., 0] <= 1e-6] = (1.0, 0.0)
    heading /= np.maximum(np.linalg.norm(heading, axis=2, keepdims=True), 1e-6)
    across = np.stack([-heading[..., 1], heading[..., 0]], axis=2) * strokes.radius[:, None, None]
    alpha = strokes.color[:, 3:]
    paint = np.concatenate([strokes.color[:, :3] * alpha, alpha], axis=1)[:, None, :] * 255
    used = np.arange(points.shape[1])[None, :] < strokes.count[:, None]
    gain = np.zeros(len(strokes), np.float32)
    change = np.zeros(len(strokes), np.float32)
    for offset in ACROSS:
        where = points + offset * across
        ix = np.clip(np.rint(where[..., 0]).astype(np.int64), 0, width - 1)
        iy = np.clip(np.rint(where[..., 1]).astype(np.int64), 0, height - 1)
        wanted = reference[iy, ix].astype(np.float32)
        before = canvas[iy, ix].astype(np.float32)
        after = paint + (1 - alpha[:, None, :]) * before
        better = np.linalg.norm(wanted - before, axis=2) - np.linalg.norm(wanted - after, axis=2)
        gain += (better * used).sum(axis=1)
        change += (np.linalg.norm(after - before, axis=2) * used).sum(axis=1)
    return gain, change


def worst_cells(error: np.ndarray, wanted: np.ndarray, size: int) -> np.ndarray:
    """(x, y) of the worst pixel of each size x size cell where `wanted` (one per cell) is true."""
    height, width = error.shape
    chosen = np.argwhere(wanted)
    if len(chosen) == 0:
        return np.zeros((0, 2), np.int64)
    offsets = np.arange(size)
    rows = np.minimum(chosen[:, :1] * size + offsets, height - 1)
    cols = np.minimum(chosen[:, 1:] * size + offsets, width - 1)
    cells = error[rows[:, :, None], cols[:, None, :]].reshape(len(chosen), -1)
    worst = cells.argmax(axis=1)
    y = rows[np.arange(len(chosen)), worst // size]
    x = cols[np.arange(len(chosen)), worst % size]
    return np.stack([x, y], axis=1)


def trace_strokes(
    starts: np.ndarray,
    rgba: np.ndarray,
    canvas: np.ndarray,
    reference: np.ndarray,
    paintable: np.ndarray,
    radius: float,
    rng: np.random.Generator,
    limit: float = COLOUR_LIMIT,
) -> tuple[np.ndarray, np.ndarray]:
    """Grow all strokes at once along the contours of the reference (Hertzmann's curved strokes),
    each until the goal's colour is `limit` (0-2) from its own."""
    height, width = paintable.shape
    n = len(starts)
    # The reference is blurred to the brush's scale, so its gradient can be taken at a quarter
    # of the brush radius without losing anything.
    factor = max(1, int(radius // 4))
    small = Image.fromarray(reference, "RGBa")
    if factor > 1:
        small = small.reduce(factor)
    luminance = Image.fromarray(np.asarray(small)[..., :3].copy(), "RGB").convert("L")
    luminance = np.asarray(luminance, np.float32)
    # np.gradient needs two pixels a side: a picture one pixel thin is padded.
    short = (max(0, 2 - luminance.shape[0]), max(0, 2 - luminance.shape[1]))
    luminance = np.pad(luminance, ((0, short[0]), (0, short[1])), "edge")
    grad_y, grad_x = np.gradient(luminance)
    grid_h, grid_w = grad_x.shape
    stroke_pm = np.concatenate([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], axis=1) * 255.0
    points = np.empty((n, MAX_POINTS, 2), np.float32)
    position = starts.astype(np.float32)
    points[:, 0] = position
    count = np.ones(n, np.int64)
    alive = np.ones(n, bool)
    angle = rng.uniform(0, 2 * np.pi, n)
    previous = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    for k in range(1, MAX_POINTS):
        ix = np.clip((position[:, 0] / factor).astype(np.int64), 0, grid_w - 1)
        iy = np.clip((position[:, 1] / factor).astype(np.int64), 0, grid_h - 1)
        gx, gy = grad_x[iy, ix], grad_y[iy, ix]
        magnitude = np.hypot(gx, gy)
        flat = magnitude < 1e-3
        direction = np.stack([-gy, gx], axis=1) / np.maximum(magnitude, 1e-6)[:, None]
        direction[flat] = previous[flat]
        flip = (direction * previous).sum(axis=1) < 0
        direction[flip] *= -1
        if k > 1:
            direction = CURVATURE * direction + (1 - CURVATURE) * previous
            direction /= np.maximum(np.linalg.norm(direction, axis=1), 1e-6)[:, None]
        step = position + radius * direction
        inside = (step[:, 0] >= 0) & (step[:, 0] <= width - 1)
        inside &= (step[:, 1] >= 0) & (step[:, 1] <= height - 1)
        sx = np.clip(np.rint(step[:, 0]).astype(np.int64), 0, width - 1)
        sy = np.clip(np.rint(step[:, 1]).astype(np.int64), 0, height - 1)
        wanted = reference[sy, sx].astype(np.float32)
        canvas_error = np.linalg.norm(wanted - canvas[sy, sx], axis=1)
        stroke_error = np.linalg.norm(wanted - stroke_pm, axis=1)
        stop = ~inside | ~paintable[sy, sx]
        # Stop where the canvas is already closer than this brushful, or the colour has moved on.
        stop |= (k >= MIN_POINTS) & (canvas_error < stroke_error)
        stop |= stroke_error > limit * 255
        alive &= ~stop
        position = np.where(alive[:, None], step, position)
        points[:, k] = position
        count += alive
        previous = direction
        if not alive.any():
            points[:, k + 1 :] = position[:, None]
            break
    return points, count


def painting_order(
    strokes: Strokes, gain: np.ndarray, rng: np.random.Generator, groups: int = 12
) -> np.ndarray:
    """The order a painter lays one brush size down in: shape by shape, what matters most first.

    Strokes are grouped by where they are and what colour they carry (k-means), so that a group
    is one patch of one colour, the way a painter blocks in the background, then the cup. Groups
    go in order of how much closer they bring the picture; strokes within a group at random.
    """
    n = len(strokes)
    groups = min(groups, n)
    if groups < 2:
        return rng.permutation(n)
    scale = max(float(np.ptp(strokes.points[:, 0], axis=0).max()), 1.0)
    features = np.concatenate([strokes.points[:, 0] * 2 / scale, strokes.color[:, :3]], axis=1)
    centres = features[rng.choice(n, groups, replace=False)]
    for _ in range(8):
        distance = ((features[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        label = distance.argmin(axis=1)
        sizes = np.bincount(label, minlength=groups)
        sums = np.stack([np.bincount(label, features[:, i], groups) for i in range(5)], axis=1)
        centres = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)
    worth = np.bincount(label, gain, groups)
    rank = np.argsort(np.argsort(-worth))
    return np.argsort(rank[label] + rng.uniform(0, 0.999, n), kind="stable")

"""A wash: the first step on a started canvas, a thin tone laid over it where its large shapes
are a few levels off.

A painter who takes up a block-in whose shapes are right but whose colours are a little off
does not repaint it: a glaze over it moves the tones as a whole and keeps its own edges. The
strokes cannot do that (they paint where a brush's view is wrong by more than the engine's
threshold), and the glazes that close small offsets come at the end. So on a started canvas the
process begins with one: each pixel moves by how far the canvas's large shapes (as the second
largest brush sees them) are from the goal's, keeping the canvas's own detail, never by more than a
glaze moves a pixel, and not where the shapes are wrong enough for the strokes to repaint.
"""

from __future__ import annotations

import numpy as np

from .raster import GLAZE, blur

REACH = 2 * GLAZE  # levels: a shape further off than this is the strokes' to repaint


def wash_layer(
    frame: np.ndarray,
    goal: np.ndarray,
    paintable: np.ndarray,
    radius: float,
    tolerance: int,
) -> tuple[np.ndarray, int, int] | None:
    """The wash over `frame` towards `goal` at the scale of a brush of `radius`: its (h, w, 4)
    straight RGBA pixels and their top-left corner, or None when no pixel needs one.

    A pixel is washed where it may be painted, canvas and goal are opaque there, and the large
    shapes are more than `tolerance` off (largest channel); it moves by that offset, all of it
    up to GLAZE levels and less beyond, down to nothing at REACH, so that the wash fades out
    where the strokes take over instead of ending in an edge.
    """
    where = paintable & (frame[..., 3] == 255) & (goal[..., 3] == 255)
    if not where.any():
        return None
    rows = np.flatnonzero(where.any(axis=1))
    cols = np.flatnonzero(where.any(axis=0))
    margin = int(2 * radius)  # the blur reaches about this far
    height, width = where.shape
    y0, y1 = max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)
    x0, x1 = max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)
    window = (slice(y0, y1), slice(x0, x1))
    canvas = np.ascontiguousarray(frame[window])
    wanted = np.ascontiguousarray(goal[window])
    offset = large_offset(canvas, wanted, radius)
    # How far off the large shapes are, each pixel counted in full: beyond REACH (paper where
    # the goal is dark) the strokes repaint, and the wash fades out before.
    far = np.abs(large_offset(canvas, wanted, radius, limit=255)).max(axis=2)
    where = where[window] & (np.abs(offset).max(axis=2) > tolerance) & (far < REACH)
    if not where.any():
        return None
    # The pixels that may not move (finished, or off by much) pull the washed ones' large
    # shapes back towards them: the offset is taken again on the washed canvas, a few times.
    move = np.where(where[..., None], offset, 0).astype(np.float32)
    washed = canvas.copy()
    for _ in range(ROUNDS - 1):
        washed[..., :3] = np.clip(canvas[..., :3] + np.rint(move), 0, 255)
        move[where] += large_offset(washed, wanted, radius)[where]
    # All of it up to GLAZE levels, then fading to nothing at REACH: a move of at most GLAZE.
    move = move[where]
    size = np.abs(move).max(axis=1)
    share = np.clip((REACH - far[where]) / (REACH - GLAZE), 0.0, 1.0)
    share = np.minimum(share, GLAZE / np.maximum(size, 1))
    moved = canvas[where][:, :3] + np.rint(move * share[:, None])
    layer = np.zeros_like(canvas)
    layer[where] = np.concatenate(
        [np.clip(moved, 0, 255).astype(np.uint8), np.full((moved.shape[0], 1), 255, np.uint8)],
        axis=1,
    )
    return layer, x0, y0


def large_offset(
    canvas: np.ndarray, goal: np.ndarray, radius: float, limit: int = GLAZE
) -> np.ndarray:
    """(h, w, 3) int16: how far the opaque `goal` is from the opaque `canvas` in the large, each
    pixel's own difference limited to `limit` levels before it is blurred: a few bright stars
    on a dark sky do not lighten the sky around them (a mean would, and move it off its goal)."""
    difference = goal[..., :3].astype(np.int16) - canvas[..., :3]
    if limit < 128:  # a blur of differences biased into 0..255
        biased = np.empty_like(canvas)
        biased[..., :3] = np.clip(difference, -limit, limit) + 128
        biased[..., 3] = 255
        return blur(biased, radius)[..., :3].astype(np.int16) - 128
    return blur(goal, radius)[..., :3].astype(np.int16) - blur(canvas, radius)[..., :3]


ROUNDS = 3  # times the offset is measured: once on the canvas, then on the canvas washed

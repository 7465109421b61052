"""The hairs of a brush in its strokes (the strokes engine's `bristles` option).

A loaded brush leaves paint in streaks along its path, thinner where a few hairs run dry, as a
brush tip image does in Krita's brushes and in Paint Transformer. Here that is one small tile
of streaks (alpha only) laid along each stroke: its rows run across the stroke, about two dozen
to its width, its columns along it; each stroke takes the tile from another row, so that
neighbouring strokes do not show the same hairs.
"""

from __future__ import annotations

import functools

import numpy as np
import skia

TILE = 64  # rows (hairs across) and columns (along) of the tile
MIN_RADIUS = 3.0  # px: a thinner brush's hairs are too fine to see, its strokes stay smooth


@functools.cache
def hair_shader(strength: float) -> skia.Shader:
    """The tile at this strength (0-1: how much paint the driest hairs leave out) as a shader
    that repeats; the same tile in every process (a fixed seed)."""
    rng = np.random.default_rng(TILE)
    hairs = rng.random(TILE)
    hairs = (hairs + np.roll(hairs, 1)) / 2  # a hair two rows wide
    # Each hair runs dry and loaded again along the stroke: slow noise, repeating with the tile.
    knots = rng.random((TILE, TILE // 8))
    along = np.arange(TILE) / 8
    low = np.floor(along).astype(int)
    share = along - low
    breaks = knots[:, low] * (1 - share) + knots[:, (low + 1) % knots.shape[1]] * share
    dry = np.clip(hairs[:, None] * 0.8 + breaks * 0.6 - 0.3, 0.0, 1.0)
    alpha = np.rint((1 - strength * dry) * 255).astype(np.uint8)
    image = skia.Image.fromarray(
        np.ascontiguousarray(alpha), colorType=skia.ColorType.kAlpha_8_ColorType
    )
    sampling = skia.SamplingOptions(skia.FilterMode.kLinear)
    return image.makeShader(skia.TileMode.kRepeat, skia.TileMode.kRepeat, sampling)


def hair_paints(
    points: np.ndarray, count: np.ndarray, radius: np.ndarray, argb: list[int], strength: float
) -> list[skia.Paint | None]:
    """For each stroke, a paint of its colour that shows the hairs along it, or None for a
    stroke too thin to show them (drawn smooth)."""
    if strength <= 0 or len(count) == 0:
        return [None] * len(count)
    shader = hair_shader(round(float(strength), 3))
    first = points[:, 0].astype(np.float64)
    last = points[np.arange(len(count)), np.maximum(count - 1, 0)].astype(np.float64)
    angle = np.degrees(np.arctan2(last[:, 1] - first[:, 1], last[:, 0] - first[:, 0]))
    across = np.maximum(0.5, radius / 12.0)  # px a row of the tile: ~24 hairs to the width
    along = radius / 3.0  # px a column: a hair dries out over a few brush widths
    phase = (np.floor(first[:, 0]) * 7 + np.floor(first[:, 1]) * 13) % TILE
    # A dab has no direction of its own: its hairs lie as the brush happened to turn.
    still = np.all(last == first, axis=1)
    angle = np.where(still, phase * (360.0 / TILE), angle)
    thin = (radius < MIN_RADIUS).tolist()
    rows = zip(
        first.tolist(), angle.tolist(), along.tolist(), across.tolist(), phase.tolist(), argb, thin
    )
    paints: list[skia.Paint | None] = []
    for (x, y), turn, long, wide, row, colour, smooth in rows:
        if smooth:
            paints.append(None)
            continue
        matrix = skia.Matrix.Translate(x, y)
        matrix.preRotate(turn)
        matrix.preScale(long, wide)
        matrix.preTranslate(0.0, row)
        # A fresh paint: skia-python's Paint.setShader costs ~0.2 ms, the constructor ~4 us.
        local = shader.makeWithLocalMatrix(matrix)
        paints.append(skia.Paint(AntiAlias=True, Color=colour, Shader=local))
    return paints

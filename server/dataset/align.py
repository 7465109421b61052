"""One size for a whole recording: where each earlier canvas size lies on the final canvas.

Krita's Recorder takes a frame whenever the canvas changes, at the canvas's size then, so a
resize (the picture scaled), a crop or a larger canvas shows as a run of frames of a new size.
The last frame before the change and the first after it show the same paint, so comparing them
tells which it was: scaled (the whole canvas stretched to the new size) or moved (the same
pixels, cropped or with canvas added, at an offset found by search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SEARCH_SIDE = 48  # px: the coarsest level of the offset search, searched exhaustively
MATCH_SIDE = 384  # px: the finest level searched; finer than the frames a sample keeps


@dataclass(frozen=True)
class Placement:
    """Where a canvas of `size` lies on the final canvas: final = scale * own + offset."""

    size: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]
    kind: str  # "final", "scaled" or "moved"

    def then(self, later: Placement) -> Placement:
        """This placement followed by `later` (which maps this one's result further on)."""
        return Placement(
            self.size,
            (self.scale[0] * later.scale[0], self.scale[1] * later.scale[1]),
            (
                later.scale[0] * self.offset[0] + later.offset[0],
                later.scale[1] * self.offset[1] + later.offset[1],
            ),
            self.kind if later.kind == "final" else f"{self.kind}+{later.kind}",
        )

    def box(self) -> list[float]:
        """[x, y, width, height]: where this canvas lies on the final one, px."""
        x, y = self.offset
        return [
            round(v, 2) for v in (x, y, self.size[0] * self.scale[0], self.size[1] * self.scale[1])
        ]


def identity(size: tuple[int, int]) -> Placement:
    return Placement(size, (1.0, 1.0), (0.0, 0.0), "final")


def change_between(
    before: np.ndarray, before_size: tuple[int, int], after: np.ndarray, after_size: tuple[int, int]
) -> Placement:
    """How a canvas of `before_size` became one of `after_size`, from the last frame before
    (`before`, RGB at any reduced size) and the first after: scaled, or moved (cropped or
    extended) by the offset that matches best."""
    (w1, h1), (w2, h2) = before_size, after_size
    g = MATCH_SIDE / max(w1, h1, w2, h2)
    a = resized(before, (max(1, round(w1 * g)), max(1, round(h1 * g))))
    b = resized(after, (max(1, round(w2 * g)), max(1, round(h2 * g))))
    stretched = resized(before, b.shape[1::-1])
    scaled_error = float(np.mean(np.abs(stretched - b)))
    scaled = Placement(before_size, (w2 / w1, h2 / h1), (0.0, 0.0), "scaled")
    (dx, dy), moved_error = best_offset(a, b)
    if moved_error < scaled_error:
        return Placement(before_size, (1.0, 1.0), (dx / g, dy / g), "moved")
    return scaled


def best_offset(a: np.ndarray, b: np.ndarray) -> tuple[tuple[int, int], float]:
    """The offset (dx, dy) of picture `a` on picture `b`, one holding the other along each
    side, where they differ least; coarse to fine. Its mean difference too."""
    levels = [(a, b)]
    while max(*levels[-1][0].shape[:2], *levels[-1][1].shape[:2]) > 2 * SEARCH_SIDE:
        x, y = levels[-1]
        levels.append((halved(x), halved(y)))
    a0, b0 = levels[-1]
    candidates = [
        (dx, dy) for dx in span(a0.shape[1], b0.shape[1]) for dy in span(a0.shape[0], b0.shape[0])
    ]
    best = min(candidates, key=lambda d: overlap_error(a0, b0, d))
    for x, y in reversed(levels[:-1]):
        near = [
            (2 * best[0] + i, 2 * best[1] + j) for i in (-2, -1, 0, 1, 2) for j in (-2, -1, 0, 1, 2)
        ]
        xs, ys = span(x.shape[1], y.shape[1]), span(x.shape[0], y.shape[0])
        near = [d for d in near if xs.start <= d[0] < xs.stop and ys.start <= d[1] < ys.stop]
        best = min(near or [best], key=lambda d: overlap_error(x, y, d))
    return best, overlap_error(a, b, best)


def span(inner: int, outer: int) -> range:
    """The offsets of a side of `inner` px on one of `outer` px, one holding the other."""
    return range(min(0, outer - inner), max(0, outer - inner) + 1)


def overlap_error(a: np.ndarray, b: np.ndarray, offset: tuple[int, int]) -> float:
    dx, dy = offset
    x0, y0 = max(0, dx), max(0, dy)
    x1, y1 = min(b.shape[1], dx + a.shape[1]), min(b.shape[0], dy + a.shape[0])
    if x1 <= x0 or y1 <= y0:
        return float("inf")
    return float(np.mean(np.abs(a[y0 - dy : y1 - dy, x0 - dx : x1 - dx] - b[y0:y1, x0:x1])))


def halved(picture: np.ndarray) -> np.ndarray:
    height, width = picture.shape[:2]
    return resized(picture, (max(1, width // 2), max(1, height // 2)))


def resized(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`picture` (uint8 or float RGB) at size = (width, height), as float32."""
    size = (int(size[0]), int(size[1]))
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(image, dtype=np.float32)


def placements(sizes: list[tuple[int, int]], firsts: dict, lasts: dict) -> dict:
    """Each canvas size's placement on the last one. `sizes` is the order the sizes came in
    (a size may come back); `lasts[i]` / `firsts[i]` are the last and first frames of run i."""
    runs = len(sizes)
    placed = {runs - 1: identity(sizes[-1])}
    for i in range(runs - 2, -1, -1):
        step = change_between(lasts[i], sizes[i], firsts[i + 1], sizes[i + 1])
        placed[i] = step.then(placed[i + 1])
    return placed


def warp(
    rgb: np.ndarray, placement: Placement, final: tuple[int, int], out: tuple[int, int]
) -> np.ndarray:
    """Frame pixels `rgb` (its canvas of placement.size, read at any reduced size) drawn where
    they lie on the final canvas, at out = (width, height) px; paper is white where the canvas
    then did not reach."""
    image = Image.fromarray(rgb)
    reach = (placement.size[0] * placement.scale[0], placement.size[1] * placement.scale[1])
    if placement.offset == (0.0, 0.0) and abs(reach[0] - final[0]) + abs(reach[1] - final[1]) < 1:
        return np.asarray(image.resize(out, Image.Resampling.LANCZOS))
    own_w, own_h = placement.size
    read = image.size[0] / own_w  # read px per canvas px
    per_out = (final[0] / out[0], final[1] / out[1])  # final px per output px
    factor = int(
        min(read * per_out[0] / placement.scale[0], read * per_out[1] / placement.scale[1])
    )
    if factor >= 2:  # shrink first, so that the affine resampling does not alias
        image = image.reduce(factor)
        read = image.size[0] / own_w
    sx, sy = placement.scale
    ox, oy = placement.offset
    coefficients = (
        per_out[0] / sx * read,
        0.0,
        -ox / sx * read,
        0.0,
        per_out[1] / sy * read,
        -oy / sy * read,
    )
    moved = image.transform(
        out, Image.Transform.AFFINE, coefficients, Image.Resampling.BICUBIC, fillcolor=(255,) * 3
    )
    return np.asarray(moved)

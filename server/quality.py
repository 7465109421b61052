"""How a painting process measures up: the figures the tests and the benchmarks check.

Colours are compared as painted on white paper, so transparency counts as what a viewer sees.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .model.pencil import smooth_field
from .model.raster import spread


def on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 colours of straight RGBA shown over white paper."""
    if np.all(rgba[..., 3] == 255):
        return rgba[..., :3].astype(np.float64)
    alpha = rgba[..., 3:].astype(np.float64) / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two RGBA pictures (inf when equal)."""
    error = np.mean((on_white(a) - on_white(b)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def structure_scale(width: int, height: int) -> float:
    """The blur (sigma, px) that keeps a picture's large shapes and colours only."""
    return max(width, height) / 32


def blurred(rgba: np.ndarray, sigma: float) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(on_white(rgba)), 0, 255).astype(np.uint8), "RGB")
    return np.asarray(image.filter(ImageFilter.GaussianBlur(sigma))).astype(np.float64)


def structure_error(frame: np.ndarray, target: np.ndarray) -> float:
    """Mean colour error of the large shapes: both pictures blurred to the structure scale."""
    sigma = structure_scale(frame.shape[1], frame.shape[0])
    return float(np.abs(blurred(frame, sigma) - blurred(target, sigma)).mean())


def detail_error(frame: np.ndarray, target: np.ndarray) -> float:
    """Mean error of the fine detail: what a 2 px blur takes out of each picture."""
    detail_frame = on_white(frame) - blurred(frame, 2.0)
    detail_target = on_white(target) - blurred(target, 2.0)
    return float(np.abs(detail_frame - detail_target).mean())


def changed_fraction(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the canvas's pixels that differ between two frames."""
    return float(np.any(before != after, axis=2).mean())


TOLERANCE = 4  # levels (0-255) within which a pixel counts as on its goal, as the engine's
JUMP = 24  # levels a pixel must move in one step for the change to be seen as a jump


def colour_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest difference in levels between two RGBA pictures (or pixel lists), per pixel:
    over the colours as shown on white paper, and over alpha (a hole is not white paint)."""
    colours = np.abs(on_white(a) - on_white(b)).max(axis=-1)
    alpha = np.abs(a[..., 3].astype(np.int16) - b[..., 3].astype(np.int16))
    return np.maximum(colours, alpha)


def finished_region(
    start: np.ndarray, target: np.ndarray, tolerance: int = TOLERANCE
) -> np.ndarray:
    """(H, W) bool: the finished parts, where the start is already the target to within
    `tolerance` levels; a match smaller than 3 x 3 px (a blur crossing the target's colour,
    a white star on white paper) is a coincidence, not a part, and is left out."""
    close = colour_difference(start, target) <= tolerance
    return spread(spread(close, np.minimum), np.maximum)


def kept_changed(start: np.ndarray, final: np.ndarray, finished: np.ndarray) -> float:
    """Share of the `finished` pixels whose final frame differs from the start in any
    channel (0 when nothing is finished): how much of what was done the process touched."""
    if not finished.any():
        return 0.0
    return float(np.any(final[finished] != start[finished], axis=1).mean())


def paste_counts(
    before: np.ndarray, after: np.ndarray, final: np.ndarray, tolerance: int = TOLERANCE
) -> tuple[int, int]:
    """(visible exact jumps, changed pixels) of one step from `before` to `after`.

    A pixel is changed when any RGBA channel differs. It is a visible exact jump when, as shown
    on white, it moves more than JUMP levels (largest channel) and lands within `tolerance` of
    the `final` frame: paint that arrives at the finish in one go, a photo pasted in.
    """
    changed = np.any(before != after, axis=2)
    if not changed.any():
        return 0, 0
    now = on_white(after[changed])
    moved = np.abs(now - on_white(before[changed])).max(axis=1)
    landed = np.abs(now - on_white(final[changed])).max(axis=1)
    return int(np.count_nonzero((moved > JUMP) & (landed <= tolerance))), int(changed.sum())


def paste_shares(shown: list[np.ndarray]) -> tuple[list[float], float]:
    """For frames 0..N: each step's share of its changed pixels that are visible exact jumps
    to frame N (paste_counts), and the share over the whole process (all jumps over all
    changed pixels). A step that changes nothing has share 0."""
    counts = [paste_counts(a, b, shown[-1]) for a, b in zip(shown, shown[1:])]
    per_step = [jumps / changed if changed else 0.0 for jumps, changed in counts]
    changed = sum(c for _, c in counts)
    return per_step, sum(j for j, _ in counts) / changed if changed else 0.0


def paper_share(
    start: np.ndarray, frame: np.ndarray, target: np.ndarray, tolerance: int = TOLERANCE
) -> float:
    """Share of the paintable area (where the start is more than `tolerance` from the
    target) whose pixel in `frame` is still exactly the start's: paper not yet painted."""
    paintable = colour_difference(start, target) > tolerance
    if not paintable.any():
        return 0.0
    untouched = np.all(frame[paintable] == start[paintable], axis=1)
    return float(untouched.mean())


def step_progress(shown: list[np.ndarray]) -> list[float]:
    """For frames 0..N: the share of what is still off the final frame (mean colour difference
    on white) that each step takes away; 1 for a step that ends on it, 0 for one that changes
    nothing, below 0 for one that goes away from it."""
    final = on_white(shown[-1])
    left = [float(np.abs(on_white(frame) - final).mean()) for frame in shown]
    return [1 - after / before if before > 0 else 1.0 for before, after in zip(left, left[1:])]


LUMA = np.array([0.299, 0.587, 0.114])  # luminance of red, green and blue (BT.601)


def luminance(rgba: np.ndarray) -> np.ndarray:
    """(H, W) float64 luminance of straight RGBA as seen on white paper, 0-255."""
    return on_white(rgba) @ LUMA


def stage_runs(stages: list[str | None]) -> list[str | None]:
    """The stages of a process in the order they come, each once (a run of steps each)."""
    return [stage for k, stage in enumerate(stages) if k == 0 or stages[k - 1] != stage]


def wash_luminance(shown: list[np.ndarray], stages: list[str | None]) -> list[float]:
    """The mean luminance of the painted area (where the final frame differs from the start)
    in frame 0 and after each step of the watercolour's washes: it should go down at every
    wash, light to dark. Empty when there are no washes."""
    washes = [k for k, stage in enumerate(stages, 1) if stage == "washes"]
    if not washes:
        return []
    painted = np.any(shown[-1] != shown[0], axis=2)
    if not painted.any():
        return []
    return [float(luminance(shown[k])[painted].mean()) for k in [0, *washes]]


def orientation(light: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The structure tensor of a (H, W) luminance map: each pixel's dominant gradient
    orientation (radians, 0-pi; the forms run across it) and its coherence (0-1, how much
    one orientation dominates), the tensor averaged over `sigma` px."""
    if min(light.shape) < 2:
        return np.zeros(light.shape), np.zeros(light.shape)
    gy, gx = np.gradient(light.astype(np.float64))

    xx, yy, xy = (smooth_field(field, sigma) for field in (gx * gx, gy * gy, gx * gy))
    angle = 0.5 * np.arctan2(2 * xy, xx - yy) % np.pi
    coherence = np.hypot(xx - yy, 2 * xy) / np.maximum(xx + yy, 1e-9)
    return angle, coherence


def hatch_angle(
    before: np.ndarray, after: np.ndarray, target: np.ndarray, coherent: float = 0.5
) -> float | None:
    """The median angle (degrees, 0-90) between the lines a step draws and the forms of the
    target where it draws them: the orientation of the darkening the step adds (its own
    structure tensor, over a few pixels) against that of the target's luminance, over the
    pixels the step darkens where the target has a clear orientation (coherence at least
    `coherent`). None where the step darkens no such pixel."""
    scale = max(before.shape[:2]) / 512
    added = np.maximum(luminance(before) - luminance(after), 0)
    drawn, drawn_coherence = orientation(added, max(1.5, 2 * scale))
    light = np.asarray(
        Image.fromarray(np.clip(luminance(target), 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(max(1.0, scale))
        ),
        np.float64,
    )
    form, form_coherence = orientation(light, max(3.0, 6 * scale))
    where = (added > 8) & (form_coherence >= coherent) & (drawn_coherence >= coherent)
    if not where.any():
        return None
    difference = np.abs(drawn[where] - form[where]) % np.pi
    return float(np.degrees(np.median(np.minimum(difference, np.pi - difference))))

"""How the strokes engine deals its steps: to each brush size by its share of the progress,
and within a size so that each step takes away a like part of what is left."""

from __future__ import annotations

import numpy as np

MIN_STEPS = 2  # so that no brush size paints all of the canvas in one step


def deal_steps(steps: int, shares: list[float]) -> list[int]:
    """Steps for each brush size. The finest (with the glazes) gets its share of the steps;
    every other size with a share gets MIN_STEPS (fewer when steps are few; then the sizes
    with the largest shares), and the rest in proportion to the shares."""
    used = [level for level, share in enumerate(shares[:-1]) if share > 0]
    finest = len(shares) - 1
    counts = [0] * len(shares)
    counts[finest] = max(1, round(steps * shares[-1] / sum(shares)))
    steps -= counts[finest]
    if not used:
        counts[finest] += steps
        return counts
    if steps < len(used):
        for level in sorted(used, key=lambda level: -shares[level])[:steps]:
            counts[level] = 1
        return counts
    base = min(MIN_STEPS, steps // len(used))
    extra = share_out(steps - base * len(used), [shares[level] for level in used])
    for level, more in zip(used, extra):
        counts[level] = base + int(more)
    return counts


def share_out(total: int, weights) -> np.ndarray:
    """Whole numbers in proportion to `weights` that add up to `total`: each its share rounded
    down, then one more for the largest remainders."""
    weights = np.asarray(weights, np.float64)
    wanted = total * weights / weights.sum()
    counts = np.floor(wanted).astype(int)
    for i in np.argsort(counts - wanted)[: total - counts.sum()]:
        counts[i] += 1
    return counts


def stage_counts(steps: int, weights: dict[str, float], kept: tuple[str, ...]) -> dict[str, int]:
    """Steps for each stage of a process style (0 for a stage left out), in total `steps`:
    one each, then the rest in proportion to the stages' `weights` (in their order). With
    fewer steps than stages, the stages kept are those earliest in `kept`."""
    chosen = [stage for stage in weights if stage in kept[: min(steps, len(kept))]]
    counts = 1 + share_out(steps - len(chosen), [weights[stage] for stage in chosen])
    out = dict.fromkeys(weights, 0)
    out.update(zip(chosen, counts.tolist()))
    return out


def split_by_progress(gain: np.ndarray, steps: int, ratio: float) -> list[int]:
    """Boundaries that deal items, in order, into `steps` runs that each take away a like
    part of the error left, when all of them together leave `ratio` of the error they found.

    Every run gets at least one item while there are items enough.
    """
    n = len(gain)
    total = float(gain.sum())
    cumulative = np.cumsum(gain)
    ratio = min(max(ratio, 1e-6), 1 - 1e-6)
    bounds = [0]
    for i in range(1, steps):
        share = (1 - ratio ** (i / steps)) / (1 - ratio)
        cut = int(np.searchsorted(cumulative, total * share, side="right"))
        cut = max(cut, bounds[-1] + 1)
        cut = min(cut, n - (steps - i))
        bounds.append(max(cut, bounds[-1]) if n >= steps else min(i, n))
    bounds.append(n)
    return bounds

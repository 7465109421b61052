"""Which frames of a process to keep: blank, near-duplicate and covered frames out, then N
keyframes spread by the amount of visible change, not evenly by time.

All of it looks at small pictures of the frames on the final canvas (`WORK_SIDE` px): a change
seen there is a change a viewer of the process notices.
"""

from __future__ import annotations

import numpy as np

WORK_SIDE = 96  # px, the longer side of the pictures the frames are judged on
VISIBLE = 12  # levels (0-255): a pixel that moves more than this has visibly changed
DUPLICATE = 0.002  # share of pixels: a frame that changes fewer than this adds nothing
BLANK_RANGE = 10  # levels: a frame whose colours all lie within this is blank paper
COVERED = 0.01  # share of pixels: more than this there and gone in the next frame is an overlay


def is_blank(small: np.ndarray) -> bool:
    """Whether a frame is one flat colour (blank paper, a cleared canvas)."""
    low, high = np.percentile(small.reshape(-1, 3), [1, 99], axis=0)
    return bool(np.all(high - low <= BLANK_RANGE))


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two small frames differ visibly, (H, W) bool."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > VISIBLE


def change(a: np.ndarray, b: np.ndarray) -> float:
    """How much visibly changed from `a` to `b`: the mean colour change, 0-1."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))) / 255.0)


def keep_frames(smalls: list[np.ndarray]) -> tuple[list[int], dict[str, int]]:
    """The frames worth keeping (indices into `smalls`, in order) and how many were dropped
    for each reason: blank, duplicate (no visible change since the last kept frame; the last
    frame, the finished picture, always stays) and covered (a change that the next kept frame
    takes back where the frames around it agree: a menu, a dialog, a stroke undone)."""
    dropped = {"blank": 0, "duplicate": 0, "covered": 0}
    kept: list[int] = []
    last = len(smalls) - 1
    for i, small in enumerate(smalls):
        if is_blank(small):
            dropped["blank"] += 1
            continue
        if kept and changed(smalls[kept[-1]], small).mean() < DUPLICATE:
            if i == last:
                kept[-1] = i  # the finished picture stands for the frames like it
            dropped["duplicate"] += 1
            continue
        kept.append(i)
        while len(kept) >= 3 and is_covered(*(smalls[k] for k in kept[-3:])):
            del kept[-2]
            dropped["covered"] += 1
    return kept, dropped


def is_covered(before: np.ndarray, frame: np.ndarray, after: np.ndarray) -> bool:
    """Whether `frame` shows something over the canvas that is gone again in `after`."""
    came = changed(before, frame)
    gone = came & changed(frame, after) & ~changed(before, after)
    return bool(gone.mean() > COVERED and gone.sum() > 0.5 * came.sum())


def choose_keyframes(smalls: list[np.ndarray], count: int) -> tuple[list[int], list[float]]:
    """`count` of the frames (indices, in order; all when there are fewer), the first and the
    last among them, spread evenly along the visible change of the process; and the share of
    the whole change reached at each."""
    steps = [0.0] + [change(a, b) for a, b in zip(smalls, smalls[1:])]
    reached = np.cumsum(steps)
    total = float(reached[-1]) or 1.0
    if len(smalls) <= count:
        chosen = list(range(len(smalls)))
    else:
        # Farthest-point choice along the change: each pick halves the largest stretch left.
        chosen = [0, len(smalls) - 1]
        distance = np.minimum(reached - reached[0], reached[-1] - reached)
        while len(chosen) < count:
            distance[chosen] = -1.0
            pick = int(np.argmax(distance))
            chosen.append(pick)
            distance = np.minimum(distance, np.abs(reached - reached[pick]))
        chosen.sort()
    return chosen, [round(float(reached[i]) / total, 4) for i in chosen]

"""A recorded painting process made into a sample: frames read, aligned to the final canvas,
filtered, and N keyframes chosen by visible change."""

from __future__ import annotations

import numpy as np
from PIL import Image

from . import align
from .keyframes import WORK_SIDE, choose_keyframes, keep_frames
from .shards import Sample
from .sources import Recording, Warn

READ_SIDE = 2 * WORK_SIDE  # px: frames are read this small for the analysis pass
KEEP_SIDE = 128  # px: and kept this small (an hour of video at 2 frames a second: 350 MB)


def sample_size(final: tuple[int, int], side: int) -> tuple[int, int]:
    """The keyframes' size: the final canvas's proportions, `side` px on the longer side, both
    sides a multiple of 8 (as the diffusion model's latents need)."""
    scale = side / max(final)
    return tuple(max(8, round(n * scale / 8) * 8) for n in final)  # type: ignore[return-value]


def process_sample(recording: Recording, count: int, side: int, warn: Warn) -> Sample | None:
    """The sample of `recording`: `count` keyframes at `side` px; None (with a warning) when
    it has no frame worth keeping."""
    names, sizes, runs = [], [], []  # per frame: its name, its canvas size, its run of one size
    run_sizes: list[tuple[int, int]] = []
    firsts: dict[int, np.ndarray] = {}
    lasts: dict[int, np.ndarray] = {}
    smalls: list[np.ndarray] = []
    for frame in recording.frames(READ_SIDE, warn):
        if not run_sizes or frame.size != run_sizes[-1]:
            run_sizes.append(frame.size)
            firsts[len(run_sizes) - 1] = frame.rgb
        lasts[len(run_sizes) - 1] = frame.rgb
        names.append(frame.name)
        sizes.append(frame.size)
        runs.append(len(run_sizes) - 1)
        smalls.append(shrunk(frame.rgb, KEEP_SIDE))
    if not names:
        warn(f"skipped {recording.path}: it holds no frame that could be read.")
        return None
    placed = align.placements(run_sizes, firsts, lasts)
    final = run_sizes[-1]
    work = sample_size(final, WORK_SIDE)
    smalls = [align.warp(small, placed[run], final, work) for small, run in zip(smalls, runs)]
    kept, dropped = keep_frames(smalls)
    if not kept:
        warn(f"skipped {recording.path}: all its {len(names)} frames are blank.")
        return None
    chosen, reached = choose_keyframes([smalls[i] for i in kept], count)
    picked = [kept[i] for i in chosen]
    if len(picked) < count:
        warn(
            f"{recording.path} shows only {len(picked)} distinct frames; its sample has "
            f"{len(picked)} keyframes, not {count}."
        )
    out = sample_size(final, side)
    frames = {}
    wanted = {names[i] for i in picked}
    for frame in recording.frames(max(out), warn, wanted):
        frames[frame.name] = frame
    images = []
    for i in picked:
        frame = frames.get(names[i])
        if frame is None:  # unreadable the second time round
            continue
        images.append(align.warp(frame.rgb, placed[runs[i]], final, out))
    meta = {
        "kind": recording.kind,
        "source": str(recording.path),
        "size": list(out),
        "canvas": list(final),
        "keyframes": [{"source": names[i], "change": share} for i, share in zip(picked, reached)],
        "recorded_frames": len(names),
        "dropped": dropped,
        "resized": [
            {
                "from": names[runs.index(run)],
                "to": names[len(runs) - 1 - runs[::-1].index(run)],
                "size": list(run_sizes[run]),
                "how": placed[run].kind,
                "box": placed[run].box(),
            }
            for run in range(len(run_sizes) - 1)
        ],
    }
    return Sample(recording.id, images, recording.caption, meta)


def shrunk(rgb: np.ndarray, side: int) -> np.ndarray:
    """`rgb` at most `side` px on its longer side."""
    image = Image.fromarray(rgb)
    image.thumbnail((side, side), Image.Resampling.BOX)
    return np.asarray(image)

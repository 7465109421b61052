"""What a dataset folder holds: counts, and a contact sheet of its first samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from ..wire.errors import PaintError
from .shards import find_shards, read_shard

THUMB_SIDE = 96  # px, the longer side of a keyframe on the contact sheet
GAP = 4  # px between them


def summary(folder: Path) -> dict:
    """Counts over every shard in `folder`: shards, samples by kind, keyframes, sizes,
    captions and the frames the readers dropped."""
    shards = find_shards(folder) if folder.is_dir() else []
    if not shards:
        raise PaintError(
            f"{folder} holds no dataset shards (*.tar); make them with `paintstep dataset "
            "build` or `paintstep dataset synth`."
        )
    kinds, frames, sizes, dropped = Counter(), Counter(), Counter(), Counter()
    captioned = 0
    for shard in shards:
        for sample in read_shard(shard, frames=False):
            kinds[sample.meta.get("kind", "?")] += 1
            frames[sample.meta.get("frames", 0)] += 1
            sizes["x".join(map(str, sample.meta.get("size", [])))] += 1
            dropped.update(sample.meta.get("dropped", {}))
            captioned += bool(sample.caption)
    return {
        "shards": len(shards),
        "samples": sum(kinds.values()),
        "kinds": dict(kinds),
        "frames": dict(frames),
        "sizes": dict(sizes),
        "captioned": captioned,
        "dropped": dict(dropped),
    }


def describe(counts: dict) -> list[str]:
    """The lines `paintstep dataset show` prints."""

    def listed(counter: dict) -> str:
        return ", ".join(f"{value} {name}" for name, value in sorted(counter.items())) or "none"

    return [
        f"{counts['samples']} samples in {counts['shards']} shard"
        + ("s" if counts["shards"] != 1 else "")
        + f": {listed(counts['kinds'])}",
        "keyframes per sample: "
        + ", ".join(f"{n} ({count} samples)" for n, count in sorted(counts["frames"].items())),
        f"sizes: {listed(counts['sizes'])}",
        f"captioned: {counts['captioned']} of {counts['samples']}",
        f"frames dropped while reading: {listed(counts['dropped'])}",
    ]


def contact_sheet(folder: Path, rows: int) -> np.ndarray:
    """The keyframes of the first `rows` samples, a row each, as one RGB picture."""
    lines: list[list[np.ndarray]] = []
    for shard in find_shards(folder):
        for sample in read_shard(shard):
            lines.append(sample.frames)
            if len(lines) >= rows:
                break
        if len(lines) >= rows:
            break
    return sheet_of(lines)


def sheet_of(lines: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of RGB frames as thumbnails on one white RGB picture, a row each."""
    lines = [[thumbnail(frame) for frame in line] for line in lines]
    width = max(sum(t.shape[1] + GAP for t in line) for line in lines) + GAP
    height = sum(max(t.shape[0] for t in line) + GAP for line in lines) + GAP
    sheet = np.full((height, width, 3), 255, np.uint8)
    y = GAP
    for line in lines:
        x = GAP
        for thumb in line:
            sheet[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
            x += thumb.shape[1] + GAP
        y += max(t.shape[0] for t in line) + GAP
    return sheet


def thumbnail(frame: np.ndarray) -> np.ndarray:
    image = Image.fromarray(frame)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image)

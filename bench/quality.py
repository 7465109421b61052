"""How the strokes engine's processes measure up against the targets of the strokes issue.

    python bench/quality.py [--width 512] [--steps 16] [--photos astronaut,coffee,chelsea]

On scikit-image's bundled photos, from blank paper and semi-to-complete (the photo with its
right half replaced by a blurred block-in), it prints per run:
- psnr: final frame to the target, dB (target >= 30)
- kept: share of the finished (left) half changed in the final frame (target <= 1 %)
- structure: share of the structure error (both blurred to 1/32 of the width) gone after 25 %
  of the steps (target >= 60 %)
- detail: share of the fine-detail error still left then (target >= 30 %)
- local: median share of the canvas one step changes (target <= 50 %); a cross-fade is 100 %
- exact: whether compositing the layers rebuilds the engine's frames
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import half_finished, photo  # noqa: E402
from paintstep.engines import get_engine  # noqa: E402
from paintstep.process import PaintRequest, frames, thumbnail  # noqa: E402
from paintstep.quality import (  # noqa: E402
    changed_fraction,
    detail_error,
    psnr,
    structure_error,
)


def measure(request: PaintRequest, finished: slice | None) -> dict[str, float]:
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    shown = [start] + list(frames(start, layers))
    target = request.goal
    quarter = shown[len(layers) // 4]
    changed = [changed_fraction(a, b) for a, b in zip(shown, shown[1:])]
    figures = {
        "psnr": psnr(shown[-1], target),
        "structure": 1 - structure_error(quarter, target) / structure_error(start, target),
        "detail": detail_error(quarter, target) / detail_error(start, target),
        "local": float(np.median(changed)),
        "exact": float(
            all(np.array_equal(lay.thumbnail, thumbnail(f)) for lay, f in zip(layers, shown[1:]))
        ),
    }
    if finished is not None:
        left = shown[-1][:, finished] != request.canvas[:, finished]
        figures["kept"] = float(np.any(left, axis=2).mean())
    return figures


TARGETS = {
    "psnr": (">=", 30),
    "kept": ("<=", 0.01),
    "structure": (">=", 0.6),
    "detail": (">=", 0.3),
    "local": ("<=", 0.5),
    "exact": (">=", 1),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--photos", default="astronaut,coffee,chelsea")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    failed = 0
    print(f"{'photo':10} {'mode':6} " + " ".join(f"{name:>9}" for name in TARGETS))
    for name in args.photos.split(","):
        target = photo(name, args.width)
        runs = {
            "blank": (PaintRequest(target, steps=args.steps, seed=args.seed), None),
            "semi": (
                PaintRequest(half_finished(target), target, steps=args.steps, seed=args.seed),
                slice(0, args.width // 2),
            ),
        }
        for mode, (request, finished) in runs.items():
            figures = measure(request, finished)
            cells = []
            for key, (sense, bound) in TARGETS.items():
                if key not in figures:
                    cells.append(f"{'-':>9}")
                    continue
                value = figures[key]
                ok = value >= bound if sense == ">=" else value <= bound
                failed += not ok
                cells.append(f"{value:8.3f}{' ' if ok else '!'}")
            print(f"{name:10} {mode:6} " + " ".join(cells))
    print("all targets met" if not failed else f"{failed} figures miss their target (marked !)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

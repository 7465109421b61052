"""How the strokes engine's processes measure up against the targets of the strokes issues.

    python bench/quality.py [--width 512] [--steps 16] [--photos astronaut,coffee,...]
                            [--starts blank,blur,blocks,sketch,holes] [--seeds 0,1,2]
                            [--option bristles=0.6 ...]

On scikit-image's bundled photos (hubble_deep_field is dark, moon is low in contrast), from
blank paper and from half-finished canvases of four kinds (tests/starts.py: blur, blocks,
sketch, holes), it prints per run, with `!` where a figure misses its target:
- psnr: final frame to the target, dB (>= 40)
- kept: share of the finished region (start within 4 levels of the target) changed by the
  end (<= 1 %)
- structure: share of the structure error (both blurred to 1/32 of the width) gone after 25 %
  of the steps (>= 60 %); `-` where the start's is under 2 levels, its shapes already right
- detail: share of the fine-detail error still left then (>= 30 %)
- local: median share of the canvas one step changes (<= 50 %); a cross-fade is 100 %
- exact: whether compositing the layers rebuilds the engine's frames
- paste: the largest share of one step's changed pixels that are visible exact jumps, moving
  more than 24 levels to within 4 of the final frame (<= 15 %)
- pasted: that share over the whole process (< 5 %)
- psnr90: the frame at round(0.9 N) to the final frame, dB (>= 33)
- paper: from blank, share of the paintable area still bare paper after 25 % (< 10 %)
- progress: the least share of what is still off the final frame that a step (but the last)
  takes away (>= 0: no step takes the picture away from its finish)
then the worst figure of each kind of start over photos and seeds.

A process style (`--option style=watercolour` or `pencil`) is held to its own figures beside
psnr, kept and exact (the painterly ones above do not apply: a watercolour is still laying
washes a quarter of the way in):
- washes (watercolour): the least drop of the painted area's mean luminance from one wash to
  the next, levels (> 0: the washes go from light to dark)
- hatching (pencil): the largest, over the hatching steps in the first half, median angle
  between the lines a step draws and the target's structure-tensor orientation (<= 20 deg)
`--photos` takes the flat illustrations `drawing` and `poster` (tests/drawings.py) as well.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import drawings  # noqa: E402
from conftest import photo  # noqa: E402
from paintstep.engines import get_engine  # noqa: E402
from paintstep.process import PaintRequest, frames, thumbnail  # noqa: E402
from paintstep.quality import (  # noqa: E402
    changed_fraction,
    detail_error,
    finished_region,
    hatch_angle,
    kept_changed,
    paper_share,
    paste_shares,
    psnr,
    stage_runs,
    step_progress,
    structure_error,
    wash_luminance,
)
from starts import STARTS  # noqa: E402

PHOTOS = "astronaut,coffee,chelsea,rocket,hubble_deep_field,moon"

TARGETS = {
    "psnr": (">=", 40),
    "kept": ("<=", 0.01),
    "structure": (">=", 0.6),
    "detail": (">=", 0.3),
    "local": ("<=", 0.5),
    "exact": (">=", 1),
    "paste": ("<=", 0.15),
    "pasted": ("<", 0.05),
    "psnr90": (">=", 33),
    "paper": ("<", 0.10),
    "progress": (">=", 0.0),
}
# A process style's own figures, beside these of the painterly ones.
SHARED = ("psnr", "kept", "exact")
STYLE_TARGETS = {
    "watercolour": {"washes": (">", 0.0)},
    "pencil": {"hatching": ("<=", 20.0)},
}


def targets_for(options: dict) -> dict[str, tuple[str, float]]:
    """The figures a run with these engine options is held to."""
    style = options.get("style", "paint")
    if style not in STYLE_TARGETS:
        return TARGETS
    return {**{key: TARGETS[key] for key in SHARED}, **STYLE_TARGETS[style]}


def picture(name: str, width: int):
    """A scikit-image photo, or a flat illustration made for the tests (drawing, poster)."""
    if name in ("drawing", "poster"):
        return getattr(drawings, name)(width)
    return photo(name, width)


STRUCTURE_SEEN = 2.0  # levels: a smaller structure error of the start is not a block-in's


def request_for(
    target: np.ndarray, start: str, seed: int, steps: int, options: dict | None = None
) -> PaintRequest:
    """The request of a run: reconstruct from blank paper, or semi-to-complete from a start."""
    options = options or {}
    if start == "blank":
        return PaintRequest(target, steps=steps, seed=seed, options=options)
    canvas = STARTS[start](target, seed)
    return PaintRequest(canvas, target, steps=steps, seed=seed, options=options)


def measure(request: PaintRequest) -> dict[str, float]:
    """Every figure of one run of the strokes engine."""
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    shown = [start] + list(frames(start, layers))
    target = request.goal
    steps = len(layers)
    quarter = shown[steps // 4]
    changed = [changed_fraction(a, b) for a, b in zip(shown, shown[1:])]
    per_step, overall = paste_shares(shown)
    figures = {
        "psnr": psnr(shown[-1], target),
        "detail": detail_error(quarter, target) / detail_error(start, target),
        "local": float(np.median(changed)),
        "exact": float(
            all(np.array_equal(lay.thumbnail, thumbnail(f)) for lay, f in zip(layers, shown[1:]))
        ),
        "paste": max(per_step),
        "pasted": overall,
        "psnr90": psnr(shown[round(0.9 * steps)], shown[-1]),
        "progress": min(step_progress(shown)[:-1], default=1.0),
    }
    # A start whose large shapes are already right to the eye has no structure error to take.
    if structure_error(start, target) >= STRUCTURE_SEEN:
        figures["structure"] = 1 - structure_error(quarter, target) / structure_error(start, target)
    finished = finished_region(start, target)
    if finished.any():
        figures["kept"] = kept_changed(start, shown[-1], finished)
    if not request.starts_on_canvas:
        figures["paper"] = paper_share(start, quarter, target)
    stages = [layer.stage for layer in layers]
    light = wash_luminance(shown, stages)
    if len(light) > 1:
        figures["washes"] = min(a - b for a, b in zip(light, light[1:]))
    angles = [
        hatch_angle(shown[k - 1], shown[k], target)
        for k, stage in enumerate(stages[: steps // 2], 1)
        if stage == "hatching"
    ]
    angles = [angle for angle in angles if angle is not None]
    if angles:
        figures["hatching"] = max(angles)
    figures["order"] = " ".join(stage or "-" for stage in stage_runs(stages))
    return figures


def run(job: tuple[str, str, int, int, int, dict]) -> dict[str, float]:
    name, start, seed, width, steps, options = job
    return measure(request_for(picture(name, width), start, seed, steps, options))


def meets(key: str, value: float, targets: dict = TARGETS) -> bool:
    sense, bound = targets[key]
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[
        sense
    ]


def cells(figures: dict[str, float], targets: dict = TARGETS) -> str:
    out = []
    for key in targets:
        if key not in figures:
            out.append(f"{'-':>9}")
        else:
            mark = " " if meets(key, figures[key], targets) else "!"
            out.append(f"{figures[key]:8.3f}{mark}")
    return " ".join(out)


def worst(runs: list[dict[str, float]], targets: dict = TARGETS) -> dict[str, float]:
    """Each figure's worst value over the runs: the lowest of a >= target, else the highest."""
    out = {}
    for key, (sense, _) in targets.items():
        values = [figures[key] for figures in runs if key in figures]
        if values:
            out[key] = min(values) if sense in (">=", ">") else max(values)
    return out


def parse_value(text: str) -> int | float | str:
    """An option's value as given: a whole number, a number, or else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--photos", default=PHOTOS)
    parser.add_argument("--starts", default="blank," + ",".join(STARTS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2, help="processes painting at once")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an engine option for every run (paintstep engines lists them)",
    )
    args = parser.parse_args()
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = parse_value(value)
    names = args.photos.split(",")
    starts = args.starts.split(",")
    unknown = [s for s in starts if s != "blank" and s not in STARTS]
    if unknown:
        parser.error(f"unknown start {unknown[0]!r}: choose from blank, {', '.join(STARTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        (n, s, seed, args.width, args.steps, options)
        for n in names
        for s in starts
        for seed in seeds
    ]
    targets = targets_for(options)
    label = max(len(n) for n in names)
    header = " ".join(f"{key:>9}" for key in targets)
    print(f"{'photo':{label}} {'start':6} {'seed':>4} {header}")
    by_start: dict[str, list[dict[str, float]]] = {s: [] for s in starts}
    with ProcessPoolExecutor(args.workers) as pool:
        for (name, start, seed, *_), figures in zip(jobs, pool.map(run, jobs)):
            by_start[start].append(figures)
            order = f"  {figures['order']}" if targets is not TARGETS else ""
            print(f"{name:{label}} {start:6} {seed:4} {cells(figures, targets)}{order}", flush=True)
    print(f"\nworst over {len(names)} photos and {len(seeds)} seeds:")
    print(f"{'start':{label + 12}} {header}")
    failed = 0
    for start, runs in by_start.items():
        summary = worst(runs, targets)
        failed += sum(not meets(key, value, targets) for key, value in summary.items())
        print(f"{start:{label + 12}} {cells(summary, targets)}")
    if failed:
        print(f"{failed} figures of the kinds of start miss their target (marked !)")
    else:
        print("all targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

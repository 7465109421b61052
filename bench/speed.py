"""How fast the strokes engine paints, how much memory it takes, and what the command adds.

    python bench/speed.py [--sizes 1024,4096] [--steps 32] [--outputs LIST]

For each size it runs the engine on a photo (scikit-image's astronaut, scaled up) in a fresh
process and prints the time to the first step and to the last, the peak memory of that process,
and each time as a ratio to a reference measured in the same process: one numpy pass over the
same image (float32 conversion, a multiply and a sum).
Targets (strokes issue 12): 1024 px, 32 steps <= 2 s, first step <= 0.5 s; 4096 px <= 15 s with
peak memory <= 1.5 GB; (issue 20) 1.2 s and 10 s. Those seconds were set on 2026-11-25, when
the reference took 1.6 ms at 1024 px and 56 ms at 4096 px; as ratios to the reference they are
the targets on any machine and any day, and `total/ref` is printed beside them (`!` a miss).

Then it runs `paintstep paint` on the same picture (the real command in a subprocess, from
starting Python to the last file written, with its default outputs unless --outputs says
otherwise) and prints its time, its ratio to the engine alone just before, and its CPU use
(user + sys over wall, from the children's rusage). Targets (issue 20): command <= 1.5x the
engine, CPU use >= 1.6 on two cores. The load average before each run is printed: other work
on the machine shows there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
from skimage import data
from paintstep.engines import get_engine
from paintstep.process import PaintRequest

size, steps = int(sys.argv[1]), int(sys.argv[2])
canvas = np.asarray(
    Image.fromarray(data.astronaut()).convert("RGBA").resize((size, size), Image.Resampling.BICUBIC)
).copy()

def numpy_pass():
    began = time.perf_counter()
    (canvas.astype(np.float32) * np.float32(1.0001)).sum()
    return time.perf_counter() - began

reference = min(numpy_pass() for _ in range(5))
engine = get_engine("strokes")
began = time.perf_counter()
first = None
for step in engine.paint(PaintRequest(canvas, steps=steps, seed=0)):
    first = first or time.perf_counter() - began
total = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "total": total, "reference": reference, "peak_mb": peak}))
"""


# Size: (the reference's seconds on 2026-11-25, issue 12's target, issue 20's target).
TARGETS = {1024: (1.6e-3, 2.0, 1.2), 4096: (56e-3, 15.0, 10.0)}


def target_cells(size: int, ratio: float) -> str:
    """The engine's total/ref against each issue's target as a ratio, or blanks for a size
    that has none."""
    if size not in TARGETS:
        return f"{'-':>8} {'-':>8}"
    reference, *seconds = TARGETS[size]
    return " ".join(
        f"{target / reference:>7.0f}{' ' if ratio <= target / reference else '!'}"
        for target in seconds
    )


def astronaut(size: int, path: Path) -> None:
    """The engine's picture, as a file for the command (the same pixels)."""
    from PIL import Image
    from skimage import data

    picture = Image.fromarray(data.astronaut()).convert("RGBA")
    picture.resize((size, size), Image.Resampling.BICUBIC).save(path, compress_level=1)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(picture: Path, steps: int, outputs: str | None) -> tuple[float, float]:
    """`paintstep paint` end to end: (wall seconds, CPU seconds over wall)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "paintstep", "paint", str(picture), "--steps"]
        command += [str(steps), "--out", f"{folder}/out", "-q"]
        if outputs is not None:
            command += ["--outputs", outputs]
        cpu, began = children_cpu(), time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - began
        return wall, (children_cpu() - cpu) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--outputs", help="the command's --outputs (its default)")
    args = parser.parse_args()
    print(
        f"{'size':>6} {'steps':>5} {'load':>5} {'first s':>8} {'total s':>8} {'ref ms':>7} "
        f"{'first/ref':>9} {'total/ref':>9} {'#12 ref':>8} {'#20 ref':>8} {'peak MB':>8} "
        f"{'command s':>9} "
        f"{'cmd/engine':>10} {'cmd CPU':>7}"
    )
    with tempfile.TemporaryDirectory() as pictures:
        for size in map(int, args.sizes.split(",")):
            load = os.getloadavg()[0]
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            picture = Path(pictures) / f"astronaut_{size}.png"
            astronaut(size, picture)
            wall, cpu = run_command(picture, args.steps, args.outputs)
            print(
                f"{size:>6} {args.steps:>5} {load:>5.1f} {r['first']:>8.2f} {r['total']:>8.2f} "
                f"{r['reference'] * 1000:>7.1f} {r['first'] / r['reference']:>9.0f} "
                f"{r['total'] / r['reference']:>9.0f} "
                f"{target_cells(size, r['total'] / r['reference'])} {r['peak_mb']:>8.0f} "
                f"{wall:>9.2f} "
                f"{wall / r['total']:>10.2f} {cpu:>7.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

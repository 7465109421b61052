"""How fast the viewer opens a big process, and how much memory it holds.

    python bench/viewer.py [--size 4096] [--steps 64]

Paints a SIZE x SIZE picture in STEPS steps into a result folder (full, with frames, as
`paintstep paint` writes; and lean, layers only, as the server's cache keeps), then, in a fresh
process each, opens it in the viewer offscreen and measures the time until the first frame is on
screen and the peak memory after scrubbing through every step. The reference is the time to
read one frame PNG of that size with Pillow, measured in the same process (target: first frame
in under a second; memory bounded, not growing with the number of steps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MAKE = r"""
import sys
import numpy as np
from PIL import Image
from skimage import data
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, composite
from paintstep.result import ResultWriter
size, steps, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
canvas = np.asarray(Image.fromarray(data.astronaut()).convert("RGBA").resize((size, size))).copy()
request = PaintRequest(canvas, steps=steps)
full = ResultWriter(folder + "/full", request.first_frame(), {"steps_planned": steps})
lean = ResultWriter(folder + "/lean", request.first_frame(), {"steps_planned": steps}, lean=True)
frame = request.first_frame()
for step in get_engine("strokes").paint(request):
    composite(frame, step)
    full.add(step, frame)
    lean.add(step)
full.manifest["complete"] = True
full.end("finished")
lean.finish()
"""

OPEN = r"""
import json, os, resource, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PIL import Image
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
folder = sys.argv[1]
began = time.perf_counter()
Image.open(folder.replace("/lean", "/full") + "/frames/frame_0001.png").load()
reference = time.perf_counter() - began
from paintstep.viewer import open_folder
began = time.perf_counter()
window = open_folder(folder)
window.show()
app.processEvents()
first = time.perf_counter() - began
for k in range(window.process.count + 1):
    window.go(k)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "reference": reference, "peak_mb": peak,
                  "cached": len(window.process.cache)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-c", MAKE, str(args.size), str(args.steps), folder], check=True
        )
        for kind in ("full", "lean"):
            out = subprocess.run(
                [sys.executable, "-c", OPEN, f"{folder}/{kind}"],
                capture_output=True,
                text=True,
                check=True,
                env=dict(os.environ),
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{kind:4} {args.size} px, {args.steps} steps: first frame {r['first']:.2f} s "
                f"(one PNG read: {r['reference']:.2f} s, ratio {r['first'] / r['reference']:.1f}); "
                f"peak memory after scrubbing all {r['peak_mb']:.0f} MB, frames kept {r['cached']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast the viewer opens a big process, and how much memory it holds.

    python bench/viewer.py [--size 4096] [--steps 64]

Paints a SIZE x SIZE picture in STEPS steps into three result folders: full (every frame
written), lean (as the server's cache keeps it: layers, thumbnails and checkpoints) and none
(`paintstep paint --outputs none`: layers and checkpoints, no thumbnails). Then, in a fresh
process each, opens each folder in the viewer offscreen and measures the time until the first
frame is on screen and the peak memory after scrubbing through every step. The reference is the
time to read one frame PNG of that size with Pillow, measured in the same process (target:
first frame in under a second; memory bounded, not growing with the number of steps). It also
says what the lean folder's checkpoints cost: their bytes beside the layers', and the time the
writer's frames thread spent compositing and writing them beside the engine's.
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
import json, sys, time
import numpy as np
from PIL import Image
from skimage import data
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, composite
from paintstep.result import ResultWriter, encode_png, load_result
size, steps, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
canvas = np.asarray(Image.fromarray(data.astronaut()).convert("RGBA").resize((size, size))).copy()
request = PaintRequest(canvas, steps=steps)
info = {"steps_planned": steps}
full = ResultWriter(folder + "/full", request.first_frame(), info)
lean = ResultWriter(folder + "/lean", request.first_frame(), info, lean=True)
none = ResultWriter(folder + "/none", request.first_frame(), info, outputs=())
spent = {"engine": 0.0, "lean_add": 0.0, "frames_thread": 0.0}
frame = request.first_frame()
began = time.perf_counter()
for step in get_engine("strokes").paint(request):
    spent["engine"] += time.perf_counter() - began
    composite(frame, step)
    full.add(step, frame)
    none.add(step, frame)
    began = time.perf_counter()
    lean.add(step)  # as the server's worker does, between two steps of the engine
    spent["lean_add"] += time.perf_counter() - began
    began = time.perf_counter()
began = time.perf_counter()
lean.finish()
spent["lean_add"] += time.perf_counter() - began
full.finish()
none.finish()
# The lean writer's frames thread, replayed alone: compositing every step, one PNG at the end.
result = load_result(folder + "/lean")
frame = result.start()
for k in range(1, steps + 1):
    layer = result.layer(k)
    began = time.perf_counter()
    composite(frame, layer)
    spent["frames_thread"] += time.perf_counter() - began
began = time.perf_counter()
encode_png(frame)
spent["frames_thread"] += time.perf_counter() - began
print(json.dumps(spent))
"""

OPEN = r"""
import json, os, resource, sys, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PIL import Image
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
folder = sys.argv[1]
began = time.perf_counter()
Image.open(folder.rsplit("/", 1)[0] + "/full/frames/frame_0001.png").load()
reference = time.perf_counter() - began
from paintstep.viewer import open_folder
began = time.perf_counter()
window = open_folder(folder)
window.show()
app.processEvents()
first = time.perf_counter() - began
walker = window.process.walker
while walker is not None and walker.thread.is_alive():
    app.processEvents()
    time.sleep(0.01)
app.processEvents()
walked = time.perf_counter() - began
for k in range(window.process.count + 1):
    window.go(k)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first": first, "walked": walked, "reference": reference, "peak_mb": peak,
                  "cached": len(window.process.cache)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        made = subprocess.run(
            [sys.executable, "-c", MAKE, str(args.size), str(args.steps), folder],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        spent = json.loads(made.strip().splitlines()[-1])
        lean = Path(folder) / "lean"
        last = (lean / "frames" / f"frame_{args.steps:04d}.png").stat().st_size
        layers = sum(p.stat().st_size for p in (lean / "layers").glob("*.png"))
        print(
            f"lean {args.size} px, {args.steps} steps: the last frame {last / 1e6:.1f} MB beside "
            f"{layers / 1e6:.0f} MB of layers (x{last / layers:.2f}); the frames thread's work "
            f"{spent['frames_thread']:.1f} s and the worker in the writer "
            f"{spent['lean_add']:.1f} s, beside the engine's {spent['engine']:.1f} s "
            f"(x{spent['frames_thread'] / spent['engine']:.2f}, "
            f"x{spent['lean_add'] / spent['engine']:.2f})"
        )
        for kind in ("full", "lean", "none"):
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
                f"what it lacks made by {r['walked']:.1f} s; "
                f"peak memory after scrubbing all {r['peak_mb']:.0f} MB, frames kept {r['cached']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PNG settings for result folders: time against size for layers and frames.

    python bench/png.py [--sizes 1024,4096] [--steps 32]

Paints scikit-image's astronaut (scaled up) with the strokes engine, keeps the layers and
frames of steps 4, 16 and the last, and encodes each with Pillow at zlib levels 1, 3 (what
result folders used before) and 6, with Pillow and zlib's run-length strategy, and with
`paintstep.png.encode_png` (rows "up"-filtered, run-length deflate). Prints the mean time
(best of two) and size per picture, and each time as a ratio to Pillow's level 3.
"""

from __future__ import annotations

import argparse
import io
import time
import zlib

import numpy as np
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, composite
from paintstep.result import encode_png
from PIL import Image
from skimage import data


def pillow(level: int, strategy: int = -1):
    def encode(rgba: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(out, "PNG", compress_level=level, compress_type=strategy)
        return out.getvalue()

    return encode


ENCODERS = {
    "Pillow, level 1": pillow(1),
    "Pillow, level 3 (before)": pillow(3),
    "Pillow, level 6": pillow(6),
    "Pillow, run-length": pillow(1, zlib.Z_RLE),
    "up filter, run-length (now)": encode_png,
}


def pictures(size: int, steps: int) -> dict[str, list[np.ndarray]]:
    canvas = Image.fromarray(data.astronaut()).convert("RGBA")
    canvas = np.asarray(canvas.resize((size, size), Image.Resampling.BICUBIC)).copy()
    request = PaintRequest(canvas, steps=steps, seed=0)
    frame = request.first_frame()
    kept: dict[str, list[np.ndarray]] = {"layer": [], "frame": []}
    for step in get_engine("strokes").paint(request):
        composite(frame, step)
        if step.index in (4, 16, steps):
            kept["layer"].append(step.pixels)
            kept["frame"].append(frame.copy())
    return kept


def measure(encode, group: list[np.ndarray]) -> tuple[float, float]:
    """Mean seconds (best of two) and MB per picture."""
    seconds, sizes = [], []
    for rgba in group:
        best = float("inf")
        for _ in range(2):
            began = time.perf_counter()
            encoded = encode(rgba)
            best = min(best, time.perf_counter() - began)
        seconds.append(best)
        sizes.append(len(encoded))
    return float(np.mean(seconds)), float(np.mean(sizes)) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1024,4096")
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()
    print("| size | picture | encoder | ms | x level 3 | MB |")
    print("|---|---|---|---|---|---|")
    for size in map(int, args.sizes.split(",")):
        for kind, group in pictures(size, args.steps).items():
            measured = {name: measure(encode, group) for name, encode in ENCODERS.items()}
            before = measured["Pillow, level 3 (before)"][0]
            for name, (seconds, megabytes) in measured.items():
                print(
                    f"| {size} | {kind} | {name} | {seconds * 1000:.0f} | "
                    f"{seconds / before:.2f} | {megabytes:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

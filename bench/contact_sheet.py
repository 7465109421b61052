"""A contact sheet of one strokes process: frames at a few shares of the steps, to look at.

    python bench/contact_sheet.py --photo astronaut --width 4096 --start blank --steps 32 \\
        --out sheet.png [--crop 0.30,0.03,0.60,0.37] [--at 0,25,50,75,90,100] [--seed 0]

The first row is the whole frames, each labelled with its step; with --crop (x0,y0,x1,y1 as
shares of the picture's width and height) a second row shows the same frames cropped there at
full resolution (up to --tile px wide), where the brushwork can be seen. Frames are shown on
white paper. For the astronaut the head is about --crop 0.30,0.03,0.60,0.37.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import photo  # noqa: E402
from paintstep.engines import get_engine  # noqa: E402
from paintstep.process import PaintRequest, composite  # noqa: E402
from paintstep.quality import on_white  # noqa: E402
from starts import STARTS  # noqa: E402

LABEL = 40  # px of label band above each row
GAP = 8


def shown(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(np.rint(on_white(frame)).astype(np.uint8), "RGB")


def crop_box(crop: str, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (float(v) for v in crop.split(","))
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise SystemExit(f"--crop {crop}: give x0,y0,x1,y1 with 0 <= x0 < x1 <= 1, same for y.")
    return round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)


def row(tiles: list[Image.Image], labels: list[str], font) -> Image.Image:
    width, height = tiles[0].size
    out = Image.new("RGB", (len(tiles) * (width + GAP) - GAP, height + LABEL), "white")
    draw = ImageDraw.Draw(out)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        left = i * (width + GAP)
        out.paste(tile, (left, LABEL))
        draw.rectangle((left, LABEL, left + width - 1, LABEL + height - 1), outline="#b0b0b0")
        draw.text((i * (width + GAP) + 4, 4), label, fill="black", font=font)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", default="astronaut", help="a scikit-image photo's name")
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--start", default="blank", choices=["blank", *STARTS])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", default="0,25,50,75,90,100", help="percent of the steps")
    parser.add_argument("--crop", help="x0,y0,x1,y1 as shares of the picture")
    parser.add_argument("--tile", type=int, default=1024, help="px, the widest a tile is")
    parser.add_argument("--out", type=Path, default=Path("sheet.png"))
    args = parser.parse_args()

    target = photo(args.photo, args.width)
    if args.start == "blank":
        request = PaintRequest(target, steps=args.steps, seed=args.seed)
    else:
        start = STARTS[args.start](target, args.seed)
        request = PaintRequest(start, target, steps=args.steps, seed=args.seed)
    wanted = {round(float(p) / 100 * args.steps): float(p) for p in args.at.split(",")}
    height, width = target.shape[:2]
    box = crop_box(args.crop, width, height) if args.crop else None
    # Tiles as wide as the crop at full resolution, within 512..--tile px, in both rows.
    tile_width = min(args.tile, max(512, box[2] - box[0] if box else 0))
    tile_size = (tile_width, round(tile_width * height / width))

    frames: dict[int, tuple[Image.Image, Image.Image | None]] = {}

    def keep(index: int, frame: np.ndarray) -> None:
        if index not in wanted:
            return
        whole = shown(frame).resize(tile_size, Image.Resampling.LANCZOS)
        part = None
        if box:
            part = shown(np.ascontiguousarray(frame[box[1] : box[3], box[0] : box[2]]))
            scale = tile_width / part.width
            part = part.resize((tile_width, round(part.height * scale)), Image.LANCZOS)
        frames[index] = (whole, part)

    began = time.perf_counter()
    frame = request.first_frame()
    keep(0, frame)
    for layer in get_engine("strokes").paint(request):
        composite(frame, layer)
        keep(layer.index, frame)
    seconds = time.perf_counter() - began

    font = ImageFont.load_default(size=max(14, LABEL // 2))
    order = sorted(frames)
    labels = [f"step {k} of {args.steps} ({wanted[k]:g} %)" for k in order]
    rows = [row([frames[k][0] for k in order], labels, font)]
    if box:
        rows.append(row([frames[k][1] for k in order], labels, font))
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows) + GAP), "white")
    top = 0
    for r in rows:
        sheet.paste(r, (0, top))
        top += r.height + GAP
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(
        f"{args.photo} {width} x {height}, {args.start}, {args.steps} steps, seed {args.seed}: "
        f"painted in {seconds:.1f} s; {args.out} ({sheet.width} x {sheet.height} px)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Makes the docs' pictures of a process: one real run of the sample, frame by frame.

python docs/make_pictures.py [process|watercolour|pencil ...]

process.jpg is the README's (the painterly style); watercolour.jpg and pencil.jpg show those
styles in docs/architecture.md.
"""

import sys
from pathlib import Path

from paintstep.cli import main
from paintstep.result import load_result
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def sheet_of(out: Path, shown: list[int], steps: int) -> Image.Image:
    """The frames `shown` of the result in `out`, in two rows of four, each labelled."""
    result = load_result(out)
    tiles = []
    for k in shown:
        tile = Image.fromarray(result.frame(k)).convert("RGB")
        tile.thumbnail((300, 300))
        draw = ImageDraw.Draw(tile)
        draw.rectangle((2, 2, 40, 16), fill=(255, 255, 255))
        draw.text((6, 4), f"{k}/{steps}", fill=(0, 0, 0))
        tiles.append(tile)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (width * 4 + 12, height * 2 + 4), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 4) * (width + 4), (i // 4) * (height + 4)))
    return sheet


def main_picture(out: Path = Path("/tmp/paintstep-readme")) -> None:
    main(["paint", "--sample", "--steps", "16", "--seed", "0", "--out", str(out), "--quiet"])
    sheet_of(out, [0, 2, 4, 6, 9, 12, 14, 16], 16).save(HERE / "process.jpg", quality=88)


# The frames each style's picture shows, of 16 steps: its stages' turns.
STYLE_FRAMES = {
    "watercolour": [0, 1, 2, 3, 5, 7, 11, 16],
    "pencil": [0, 2, 4, 6, 8, 10, 13, 16],
}


def style_picture(style: str, out: Path = Path("/tmp/paintstep-style")) -> None:
    main(
        ["paint", "--sample", "--steps", "16", "--seed", "0", "--out", str(out), "--quiet"]
        + ["--option", f"style={style}"]
    )
    sheet_of(out, STYLE_FRAMES[style], 16).save(HERE / f"{style}.jpg", quality=85)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["process"]:
        main_picture() if name == "process" else style_picture(name)

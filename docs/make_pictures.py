"""Makes docs/process.jpg, the README's picture: one real run of the sample, frame by frame.

python docs/make_pictures.py
"""

from pathlib import Path

from paintstep.cli import main
from paintstep.result import load_result
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def main_picture(out: Path = Path("/tmp/paintstep-readme")) -> None:
    main(["paint", "--sample", "--steps", "16", "--seed", "0", "--out", str(out), "--quiet"])
    result = load_result(out)
    shown = [0, 2, 4, 6, 9, 12, 14, 16]
    tiles = []
    for k in shown:
        tile = Image.fromarray(result.frame(k)).convert("RGB")
        tile.thumbnail((300, 300))
        draw = ImageDraw.Draw(tile)
        draw.rectangle((2, 2, 40, 16), fill=(255, 255, 255))
        draw.text((6, 4), f"{k}/16", fill=(0, 0, 0))
        tiles.append(tile)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (width * 4 + 12, height * 2 + 4), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % 4) * (width + 4), (i // 4) * (height + 4)))
    sheet.save(HERE / "process.jpg", quality=88)


if __name__ == "__main__":
    main_picture()

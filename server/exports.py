"""Exports of a result: an animation of frames k1..k2, a contact sheet, an OpenRaster file.

No Qt: the viewer calls these, and so can anyone with a result folder.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, ImageDraw

from .result import Result, animation_frame, write_gif, write_mp4
from .wire.errors import PaintError


def frame_range(result: Result, first: int, last: int) -> range:
    count = len(result.steps)
    if not 0 <= first <= last <= count:
        raise PaintError(f"Choose frames between 0 and {count}, the first not after the last.")
    return range(first, last + 1)


def export_animation(result: Result, first: int, last: int, path: str | Path) -> Path:
    """Frames first..last as a GIF or an MP4, by the path's suffix."""
    path = Path(path)
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise PaintError(f"Export an animation as .gif or .mp4, not {path.suffix or 'no suffix'}.")
    pictures = [animation_frame(result.frame(k)) for k in frame_range(result, first, last)]
    (write_gif if path.suffix.lower() == ".gif" else write_mp4)(path, pictures)
    return path


def contact_sheet(
    result: Result, frames: list[int], path: str | Path, columns: int = 4, cell: int = 320
) -> Path:
    """The chosen frames in a grid, each labelled with its step, as a PNG for printing."""
    if not frames:
        raise PaintError("Choose at least one frame for the contact sheet.")
    for k in frames:
        frame_range(result, k, k)
    width, height = result.manifest["width"], result.manifest["height"]
    scale = cell / max(width, height)
    tile = (max(1, round(width * scale)), max(1, round(height * scale)))
    label = 22
    rows = -(-len(frames) // columns)
    sheet = Image.new(
        "RGB", (columns * (tile[0] + 8) + 8, rows * (tile[1] + label + 8) + 8), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for n, k in enumerate(frames):
        x = 8 + (n % columns) * (tile[0] + 8)
        y = 8 + (n // columns) * (tile[1] + label + 8)
        picture = animation_frame(result.frame(k)).resize(tile, Image.Resampling.LANCZOS)
        sheet.paste(picture, (x, y))
        draw.text((x, y + tile[1] + 4), "start" if k == 0 else f"step {k}", fill=(0, 0, 0))
    path = Path(path)
    sheet.save(path)
    return path


def write_ora(result: Result, path: str | Path) -> Path:
    """An OpenRaster file (Krita, GIMP, MyPaint open it): the start and one layer per step,
    first step at the bottom, each at its place."""
    width, height = result.manifest["width"], result.manifest["height"]
    steps = len(result.steps)
    entries = []  # (name, file, x, y), top of the stack first
    pngs: dict[str, bytes] = {}
    for k in range(steps, 0, -1):
        layer = result.layer(k)
        if layer.is_empty:
            continue
        name = f"data/step_{k:04d}.png"
        pngs[name] = png_bytes(layer.pixels)
        entries.append((f"Step {k}", name, layer.x, layer.y))
    pngs["data/start.png"] = png_bytes(result.start())
    entries.append(("Start", "data/start.png", 0, 0))
    final = result.frame(steps)
    stack = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<image version="0.0.3" w="{width}" h="{height}">',
        "<stack>",
    ]
    for name, file, x, y in entries:
        stack.append(
            f'<layer name={quoteattr(name)} src={quoteattr(file)} x="{x}" y="{y}" '
            'opacity="1.0" visibility="visible" composite-op="svg:src-over"/>'
        )
    stack += ["</stack>", "</image>"]
    small = Image.fromarray(final, "RGBA")
    small.thumbnail((256, 256))
    path = Path(path)
    with zipfile.ZipFile(path, "w") as archive:
        # OpenRaster: "mimetype" first and stored, so that tools recognise the file.
        archive.writestr(zipfile.ZipInfo("mimetype"), "image/openraster")
        archive.writestr("stack.xml", "\n".join(stack), zipfile.ZIP_DEFLATED)
        for name, data in pngs.items():
            archive.writestr(name, data, zipfile.ZIP_STORED)
        archive.writestr("mergedimage.png", png_bytes(final), zipfile.ZIP_STORED)
        archive.writestr(
            "Thumbnails/thumbnail.png", png_bytes(np.asarray(small)), zipfile.ZIP_STORED
        )
    return path


def png_bytes(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(out, format="PNG", compress_level=3)
    return out.getvalue()

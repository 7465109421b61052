"""Reading pictures from files into 8-bit straight RGBA, with a sentence for every problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .process import MAX_SIDE, PaintError

# Pillow refuses pictures above twice this as decompression bombs, before their size can be read;
# our own side limit (at most MAX_SIDE) is checked first for all the others.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE
DEFAULT_MAX_SIDE = 8192  # as the server's default: 256 MB of RGBA, a few GB while painting


def load_rgba(
    path: str | Path,
    what: str = "The picture",
    max_side: int = DEFAULT_MAX_SIDE,
    limit: str = "",
) -> tuple[np.ndarray, list[str]]:
    """The picture at `path` as (H, W, 4) uint8 straight RGBA, and notices about conversions.
    A side above `max_side` is refused before the pixels are decoded; `limit` says whose limit
    that is (Paintstep's, raised with --max-side, by default)."""
    limit = limit or f"Paintstep paints up to {max_side} px per side" + (
        f" (--max-side raises the limit, up to {MAX_SIDE})" if max_side < MAX_SIDE else ""
    )
    path = Path(path)
    notices: list[str] = []
    if not path.exists():
        raise PaintError(f"{what} {path} does not exist; check the path.")
    if path.is_dir():
        raise PaintError(f"{what} {path} is a folder; give the path of a picture file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the side is checked
            with Image.open(path) as opened:
                return read_opened(opened, path, what, notices, max_side, limit)
    except Image.DecompressionBombError:
        raise PaintError(
            f"{what} {path} has more than {2 * MAX_SIDE * MAX_SIDE:,} pixels, too large: "
            f"{limit}; scale it down to at most {max_side} px on its longer side."
        ) from None
    except UnidentifiedImageError:
        raise PaintError(
            f"{what} {path} is not a picture Paintstep can read; save it as PNG, JPEG, WebP "
            "or TIFF."
        ) from None
    except OSError as error:
        raise PaintError(
            f"{what} {path} could not be read ({error}); check that the file is complete and "
            "readable."
        ) from None


def read_opened(
    image: Image.Image, path: Path, what: str, notices: list[str], max_side: int, limit: str
) -> tuple[np.ndarray, list[str]]:
    """An opened picture's pixels; its size is checked before they are decoded."""
    width, height = image.size
    if max(width, height) > max_side:
        raise PaintError(
            f"{what} {path} is {width} x {height} px, too large: {limit}; scale it down to at "
            f"most {max_side} px on its longer side."
        )
    if getattr(image, "n_frames", 1) > 1:
        notices.append(f"{what} {path.name} has several frames; using the first.")
    return to_rgba(ImageOps.exif_transpose(image), what, path.name, notices), notices


def to_rgba(image: Image.Image, what: str, name: str, notices: list[str]) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode != "F" and values.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.rint(values * 255.0 / top), 0, 255).astype(np.uint8)
        notices.append(f"{what} {name} is {mode} grayscale; converted it to 8-bit RGBA.")
        return np.asarray(Image.fromarray(gray, "L").convert("RGBA")).copy()
    if mode != "RGBA":
        if mode not in ("RGB", "L", "LA", "P", "PA", "RGBX", "RGBa", "1", "La"):
            notices.append(f"{what} {name} is in {mode} colour; converted it to RGBA.")
        image = image.convert("RGBA")
    return np.asarray(image).copy()


def load_mask(
    path: str | Path, size: tuple[int, int], max_side: int = DEFAULT_MAX_SIDE, limit: str = ""
) -> tuple[np.ndarray, list[str]]:
    """A mask picture as (H, W) bool: its alpha where it has transparency, else its brightness."""
    rgba, notices = load_rgba(path, "The mask", max_side, limit)
    rgba, more = fit_to(rgba, size, "The mask", Image.Resampling.NEAREST)
    notices += more
    alpha = rgba[..., 3]
    if alpha.min() < 255:
        return alpha > 127, notices
    brightness = rgba[..., :3].astype(np.uint16).sum(axis=2)
    return brightness > 3 * 127, notices


def fit_to(
    rgba: np.ndarray,
    size: tuple[int, int],
    what: str,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
    other: str = "the canvas",
) -> tuple[np.ndarray, list[str]]:
    """`rgba` resized to size = (width, height), the size of `other`, if it is not that size
    already, with a notice."""
    height, width = rgba.shape[:2]
    if (width, height) == tuple(size):
        return rgba, []
    notice = (
        f"{what} is {width} x {height} px and {other} {size[0]} x {size[1]} px; "
        f"resized it to {size[0]} x {size[1]} px."
    )
    if abs(width / height - size[0] / size[1]) > 0.01:
        notice += (
            " Their proportions differ, so it is stretched; crop it to match for a truer result."
        )
    resized = Image.fromarray(rgba, "RGBA").resize(size, resample)
    return np.asarray(resized).copy(), [notice]

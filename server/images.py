"""Reading pictures from files into 8-bit straight RGBA, with a sentence for every problem."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .process import MAX_SIDE, PaintError

# Pillow refuses pictures above this as decompression bombs; our own side limit comes first.
Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE


def load_rgba(path: str | Path, what: str = "The picture") -> tuple[np.ndarray, list[str]]:
    """The picture at `path` as (H, W, 4) uint8 straight RGBA, and notices about conversions."""
    path = Path(path)
    notices: list[str] = []
    if not path.exists():
        raise PaintError(f"{what} {path} does not exist; check the path.")
    if path.is_dir():
        raise PaintError(f"{what} {path} is a folder; give the path of a picture file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                return read_opened(opened, path, what, notices)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
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
    image: Image.Image, path: Path, what: str, notices: list[str]
) -> tuple[np.ndarray, list[str]]:
    """An opened picture's pixels; its size is checked before they are decoded."""
    width, height = image.size
    if max(width, height) > MAX_SIDE:
        raise PaintError(
            f"{what} {path} is {width} x {height} px, larger than the {MAX_SIDE} px per side "
            f"Paintstep paints; scale it down to at most {MAX_SIDE} px on its longer side."
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


def load_mask(path: str | Path, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """A mask picture as (H, W) bool: its alpha where it has transparency, else its brightness."""
    rgba, notices = load_rgba(path, "The mask")
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
) -> tuple[np.ndarray, list[str]]:
    """`rgba` resized to size = (width, height) if it is not that size already, with a notice."""
    height, width = rgba.shape[:2]
    if (width, height) == tuple(size):
        return rgba, []
    notice = (
        f"{what} is {width} x {height} px and the canvas {size[0]} x {size[1]} px; "
        f"resized it to {size[0]} x {size[1]} px."
    )
    if abs(width / height - size[0] / size[1]) > 0.01:
        notice += (
            " Their proportions differ, so it is stretched; crop it to match for a truer result."
        )
    resized = Image.fromarray(rgba, "RGBA").resize(size, resample)
    return np.asarray(resized).copy(), [notice]

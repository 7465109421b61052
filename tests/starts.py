"""Half-finished canvases of several kinds, made from the target, for semi-to-complete.

Each kind takes the target (H, W, 4) uint8 RGBA and a seed and returns a start of the same size,
the same for the same (target, seed). The finished region is where the start equals the target;
everywhere else the start is what a painter may have left there. Sizes scale with the picture
(shapes are laid out on a grid of a few cells, lines are drawn at a fixed share of the width),
so a start looks the same at 128 px and at 4096 px.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

PAPER = (255, 255, 255, 255)
INK = (58, 50, 44)  # a dark brown-grey pencil or charcoal line
SKETCH_SIDE = 512  # the line drawing is traced at this size, then scaled: lines keep their share


def blur(target: np.ndarray, seed: int = 0) -> np.ndarray:
    """The target with its right half replaced by a blurred block-in (sigma = width / 16)."""
    width = target.shape[1]
    sigma = max(2.0, width / 16)
    blurred = np.asarray(Image.fromarray(target).filter(ImageFilter.GaussianBlur(sigma)))
    start = target.copy()
    start[:, width // 2 :] = blurred[:, width // 2 :]
    return start


def blocks(target: np.ndarray, seed: int = 0) -> np.ndarray:
    """A block-in in 6-9 flat colours over about 60 % of the canvas, in blobby regions; the
    rest is the target."""
    rng = np.random.default_rng([seed, 1])
    start = target.copy()
    unfinished = blobs(target.shape[:2], rng, share=0.6)
    flat = flat_colours(target, int(rng.integers(6, 10)))
    start[unfinished] = flat[unfinished]
    return start


def sketch(target: np.ndarray, seed: int = 0) -> np.ndarray:
    """A line drawing of the target's edges on white paper, thin and a little rough, with
    about a third of it coloured flat; about a fifth of the canvas is the target already."""
    rng = np.random.default_rng([seed, 2])
    shape = target.shape[:2]
    finished = blobs(shape, rng, share=0.2)
    coloured = blobs(shape, rng, share=0.35)
    start = np.empty_like(target)
    start[...] = PAPER
    start[coloured] = flat_colours(target, int(rng.integers(5, 8)))[coloured]
    line = lines(target, rng)[..., None]
    start[..., :3] = np.rint(start[..., :3] * (1 - line) + np.array(INK) * line).astype(np.uint8)
    start[finished] = target[finished]
    return start


def holes(target: np.ndarray, seed: int = 0) -> np.ndarray:
    """The target with irregular holes cut in it, each white paper or transparent: at least
    four, until 15-25 % of the canvas is holes."""
    rng = np.random.default_rng([seed, 3])
    height, width = target.shape[:2]
    side = min(width, height)
    share = rng.uniform(0.15, 0.25)
    start = target.copy()
    cut = np.zeros((height, width), bool)
    count = 0
    while count < 4 or (cut.mean() < share and count < 12):
        count += 1
        radius = rng.uniform(0.07, 0.15) * side
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        reach = int(np.ceil(radius * 1.6))
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach + 1)
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach + 1)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        angle = np.arctan2(ys - cy, xs - cx)
        edge = np.ones_like(angle)
        for k in (2, 3, 4, 5):  # a few lobes make a torn, irregular outline
            edge += rng.uniform(0, 0.6 / k) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
        inside = np.hypot(xs - cx, ys - cy) < radius * edge
        start[y0:y1, x0:x1][inside] = PAPER if rng.random() < 0.5 else (0, 0, 0, 0)
        cut[y0:y1, x0:x1] |= inside
    return start


STARTS = {"blur": blur, "blocks": blocks, "sketch": sketch, "holes": holes}


def make_start(kind: str, target: np.ndarray, seed: int = 0) -> np.ndarray:
    """The start of `kind` (one of STARTS) for the target."""
    return STARTS[kind](target, seed)


def blobs(shape: tuple[int, int], rng: np.random.Generator, share: float) -> np.ndarray:
    """(H, W) bool: about `share` of the picture in a few smooth blobs, from random values
    on a grid of about 5 cells across, scaled up smoothly and cut at a level."""
    height, width = shape
    noise = smooth_noise((width, height), rng, cells=5)
    level = np.quantile(noise[:: max(1, height // 256), :: max(1, width // 256)], 1 - share)
    return noise > level


def flat_colours(target: np.ndarray, colours: int) -> np.ndarray:
    """The target in `colours` flat colours with smooth outlines: blurred to large shapes,
    then each pixel given the nearest colour of a palette chosen on a small copy."""
    height, width = target.shape[:2]
    rgb = Image.fromarray(target).convert("RGB")
    scale = min(1.0, 256 / max(width, height))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = rgb.resize(small_size, Image.LANCZOS).filter(
        ImageFilter.GaussianBlur(max(small_size) / 40)
    )
    palette = small.quantize(colours, method=Image.Quantize.MEDIANCUT)
    smooth = small.resize((width, height), Image.BICUBIC)
    flat = smooth.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGBA")
    out = np.asarray(flat).copy()
    out[..., 3] = target[..., 3]
    return out


def lines(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float 0-1: the darkness of a line drawing of the target's edges.

    Traced at SKETCH_SIDE px (or the picture's size if smaller), wobbled by about a pixel there,
    broken in places and uneven in pressure, then scaled to the picture, anti-aliased.
    """
    from scipy import ndimage  # here, not at the top: conftest imports this module
    from skimage import feature

    height, width = target.shape[:2]
    scale = min(1.0, SKETCH_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = np.asarray(Image.fromarray(target).convert("L").resize(size, Image.LANCZOS))
    # Only the strongest tenth of the edges at a scale of large shapes: contours, not texture.
    edges = feature.canny(
        grey.astype(np.float64),
        sigma=max(1.0, max(size) / 150),
        low_threshold=0.8,
        high_threshold=0.9,
        use_quantiles=True,
    )
    strength = edges.astype(np.float32)
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    wobble = [smooth_noise(size, rng, cells=24) * 2 - 1 for _ in range(2)]
    strength = ndimage.map_coordinates(strength, [rows + wobble[0], cols + wobble[1]], order=1)
    pressure = smooth_noise(size, rng, cells=16)
    strength *= np.clip(pressure * 1.6 - 0.2, 0, 1)  # uneven, and gone where the pen lifted
    picture = Image.fromarray(np.clip(strength, 0, 1).astype(np.float32), "F")
    return np.clip(np.asarray(picture.resize((width, height), Image.BILINEAR)) * 1.4, 0, 1)


def smooth_noise(size: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """(H, W) float32 smooth random values 0-1 of `size` (W, H), about `cells` across."""
    width, height = size
    step = cells / max(width, height)
    grid = rng.random((max(2, round(height * step) + 1), max(2, round(width * step) + 1)))
    picture = Image.fromarray(grid.astype(np.float32), "F").resize(size, Image.BICUBIC)
    return np.asarray(picture)

"""Per-pixel maths on RGBA canvases for the strokes engine: distances, blurs, filters, and the
glazes that close what the strokes leave.

Images are (H, W, 4) uint8; "premultiplied" ones as skia and Pillow's "RGBa" hold them.
"""

from __future__ import annotations

import numpy as np
from paintstep.bands import in_bands
from paintstep.process import BAND_ROWS, blend_words, solve_over
from PIL import Image, ImageFilter

GLAZE = 24  # levels (largest channel): a move this small is a glaze, not a visible jump


def pixel_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel largest channel difference of two premultiplied RGBA uint8 images, uint8."""
    difference = np.zeros(a.shape[:2], np.uint8)

    def rows(top: int, bottom: int) -> None:
        out = difference[top:bottom]
        for channel in range(4):
            first, second = a[top:bottom, :, channel], b[top:bottom, :, channel]
            high = np.maximum(first, second)
            high -= np.minimum(first, second)
            np.maximum(out, high, out=out)

    in_bands(len(difference), rows)
    return difference


def squared_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel squared distance of two RGBA uint8 images, as int32 (0..4 * 255**2)."""
    total = np.zeros(a.shape[:2], np.int32)

    def rows(top: int, bottom: int) -> None:
        for channel in range(4):
            d = a[top:bottom, :, channel].astype(np.int16)
            d -= b[top:bottom, :, channel]
            # d * d is at most 65025: it overflows int16 but is exact read back as uint16.
            np.multiply(d, d, out=d, dtype=np.int16, casting="unsafe")
            total[top:bottom] += d.view(np.uint16)

    in_bands(len(total), rows)
    return total


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance of two premultiplied RGBA uint8 images, in 0..2."""
    distance = np.zeros(a.shape[:2], np.float32)

    def rows(top: int, bottom: int) -> None:
        out = distance[top:bottom]
        for channel in range(4):
            d = a[top:bottom, :, channel].astype(np.float32) - b[top:bottom, :, channel]
            out += d * d
        np.sqrt(out, out=out)
        out /= 255.0

    in_bands(len(distance), rows)
    return distance


def largest_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) largest channel difference of two (n, 4) int16 pixel arrays (as premultiplied
    returns them), column by column: many times faster than a max over the short axis."""
    channels = np.abs(a - b)
    return np.maximum(
        np.maximum(channels[:, 0], channels[:, 1]), np.maximum(channels[:, 2], channels[:, 3])
    )


def premultiplied(pixels: np.ndarray) -> np.ndarray:
    """(n, 4) straight RGBA as premultiplied int16, rounded as Pillow and skia round."""
    out = pixels.astype(np.int16)
    if pixels[:, 3].min(initial=255) == 255:
        return out
    out[:, :3] = (pixels[:, :3].astype(np.uint16) * pixels[:, 3:] + 127) // 255
    return out


def box_reduce(image: np.ndarray, mode: str, size: int) -> np.ndarray:
    """The mean of each size x size cell (cells at the edges cover what is left)."""
    return np.asarray(Image.fromarray(image, mode).reduce(size))


def cell_max(values: np.ndarray, size: int) -> np.ndarray:
    """The largest value in each size x size cell (cells at the edges cover what is left)."""
    height, width = values.shape
    rows, cols = -(-height // size), -(-width // size)
    padded = np.zeros((rows * size, cols * size), values.dtype)
    padded[:height, :width] = values
    # Down the rows first, on whole rows at a time; then across the (fewer) columns.
    across = padded.reshape(rows, size, cols * size).max(axis=1)
    return across.reshape(rows, cols, size).max(axis=2)


def spread(image: np.ndarray, pick) -> np.ndarray:
    """A 3 x 3 minimum (pick=np.minimum) or maximum filter, edges repeated, as Pillow's
    MinFilter(3) and MaxFilter(3) do: in rows then in columns, 50 times faster at 4096 px."""
    out = image.copy()
    pick(out[1:], image[:-1], out=out[1:])
    pick(out[:-1], image[1:], out=out[:-1])
    rows = out.copy()
    pick(out[:, 1:], rows[:, :-1], out=out[:, 1:])
    pick(out[:, :-1], rows[:, 1:], out=out[:, :-1])
    return out


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """The goal as a brush of this radius sees it: blurred by half the radius.

    Wide blurs run on a reduced copy and are scaled back up, which looks the same and is fast.
    """
    picture = Image.fromarray(image, "RGBa")
    sigma = radius / 2
    factor = int(sigma // 2)
    if factor < 2:
        return gaussian_blur(image, sigma)
    small = picture.reduce(factor).filter(ImageFilter.GaussianBlur(sigma / factor))
    return np.asarray(small.resize(picture.size, Image.Resampling.BILINEAR))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Pillow's Gaussian blur of a premultiplied RGBA image, by bands of rows on all cores.

    Each band is blurred with enough rows around it that its own rows come out exactly as in
    a blur of the whole picture (Pillow's three box passes reach about 3 sigma each).
    """
    height = image.shape[0]
    out = np.empty_like(image)
    reach = 3 * int(np.ceil(3 * sigma)) + 8

    def rows(start: int, stop: int) -> None:
        top, bottom = max(0, start - reach), min(height, stop + reach)
        band = Image.fromarray(np.ascontiguousarray(image[top:bottom]), "RGBa")
        blurred = np.asarray(band.filter(ImageFilter.GaussianBlur(sigma)))
        out[start:stop] = blurred[start - top : stop - top]

    in_bands(height, rows, least=4 * reach)
    return out


def halfway_to(pixels: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """(n, 4) straight RGBA half the way from `pixels` to an opaque `goal`, as seen on white
    paper: the colour half way from how the pixel looks, the opacity half way to full,
    and all the way where it is at least half: "over" cannot move the colour of a nearly
    opaque pixel (a stroke's soft edge on a transparent start) without adding opacity, and
    such pixels were left for the last step to paste."""
    alpha = pixels[:, 3:].astype(np.float32)
    seen = (pixels[:, :3] * alpha + 255 * (255 - alpha)) / 255
    middle = (seen + goal[:, :3]) / 2
    opacity = np.where(alpha >= 128, 255.0, (alpha + 255) // 2)
    out = np.empty_like(goal)
    # The colour that, at this opacity on white, looks like the middle.
    out[:, :3] = np.clip(np.rint((middle * 255 - 255 * (255 - opacity)) / opacity), 0, 255)
    out[:, 3] = opacity[:, 0]
    return out


def limit_alpha(layer: np.ndarray, below: np.ndarray, goal: np.ndarray) -> None:
    """Keep strokes off pixels that are not opaque and should end translucent (in place).

    Paint only adds opacity: a stroke there would use up the opacity that finishing needs to
    set the exact colour, so those pixels are left to the finishing alone.
    """
    keep_off = (below[..., 3] < 255) & (goal[..., 3] < 255)
    layer[..., 3][keep_off] = 0


def glaze_layer(
    layer: np.ndarray,
    x0: int,
    y0: int,
    frame: np.ndarray,
    goal: np.ndarray,
    where: np.ndarray,
    level: int,
    halfway: bool = False,
) -> None:
    """Add to the layer (placed at x0, y0), where the canvas would still be more than `level`
    off inside `where`, exactly what is missing; or, `halfway`, half of it where the goal is
    opaque (all of it where that is at most twice `level` and a glaze). In place, touching the
    pixels inside `where` only."""
    layer_words = layer.view(np.uint32).reshape(-1)
    frame_words = frame.view(np.uint32).reshape(-1)
    goal_words = goal.view(np.uint32).reshape(-1)

    def glaze_rows(start: int, stop: int) -> None:
        for top in range(start, stop, BAND_ROWS):
            glaze_band(top, min(top + BAND_ROWS, stop))

    def glaze_band(top: int, bottom: int) -> None:
        rows, cols = np.nonzero(where[top:bottom])
        if rows.size == 0:
            return
        rows += top
        spots = (rows + y0) * frame.shape[1] + cols + x0
        local = rows * layer.shape[1] + cols
        below = np.take(frame_words, spots)
        wanted = np.take(goal_words, spots)
        after = blend_words(below, np.take(layer_words, local)).view(np.uint8).reshape(-1, 4)
        goal_pixels = wanted.view(np.uint8).reshape(-1, 4)
        goal_pm = premultiplied(goal_pixels)
        difference = largest_difference(premultiplied(after), goal_pm)
        off = difference > level
        if halfway:
            off &= goal_pixels[:, 3] == 255  # solve_over lays it over a translucent pixel
        if not off.any():
            return
        below = below[off]
        goal_pixels = goal_pixels[off]
        if halfway:
            # Half the way; all of it where that is a small move anyway, counting what the
            # step's earlier glazes already moved the pixel.
            middle = halfway_to(after[off], goal_pixels)
            start = premultiplied(below.view(np.uint8).reshape(-1, 4))
            moved = largest_difference(start, goal_pm[off])
            near = (difference[off] <= min(2 * level, GLAZE)) & (moved <= GLAZE)
            goal_pixels = np.where(near[:, None], goal_pixels, middle)
        if (below >= np.uint32(0xFF000000)).all() and goal_pixels[:, 3].min() == 255:
            fix = goal_pixels  # opaque over opaque is itself
        else:
            fix = solve_over(below.view(np.uint8).reshape(-1, 4), goal_pixels)
        np.put(layer_words, local[off], np.ascontiguousarray(fix).view(np.uint32).reshape(-1))

    in_bands(where.shape[0], glaze_rows)

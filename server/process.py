"""The painting process: a start canvas and the step layers painted over it.

Every engine, the server, the viewer and the Krita plugin share this model. A canvas is an
(H, W, 4) uint8 array of straight (not premultiplied) RGBA. A step is a layer: a bounding box and
its RGBA pixels. Frame k is frame k-1 with step k composited over it ("normal" blending, the
same as a Krita paint layer at 100 % opacity), and frame 0 is the start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageColor

from .bands import in_bands
from .wire.errors import PaintError

MAX_STEPS = 1000
MAX_PROMPT = 2000
MAX_SIDE = 16384
THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class StepLayer:
    """The paint added by one step: RGBA pixels placed at (x, y) on the canvas, and the stage
    of the process it belongs to when the engine says (e.g. "sketch", "flats", "finish")."""

    index: int
    x: int
    y: int
    pixels: np.ndarray
    thumbnail: np.ndarray | None = None
    stage: str | None = None

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the layer on the canvas."""
        return (self.x, self.y, self.width, self.height)

    @property
    def is_empty(self) -> bool:
        return self.pixels.size == 0


@dataclass
class PaintRequest:
    """What an engine is asked to paint.

    `canvas` is the picture as it is now. With a `target`, the process goes from the canvas to
    the target (semi-to-complete). Without one, the canvas itself is the goal and the process
    starts from blank paper (reconstruct), unless `complete` is set: then the process starts on
    the canvas and an engine that can invent (diffusion) paints the rest. `mask` (H, W) marks
    where painting is allowed. `paper` is the blank start for reconstruct: "white",
    "transparent", "#rrggbb", or None to pick white for an opaque canvas and transparent for one
    with transparency. `prompt` says in words what the picture shows, for engines that read one.
    """

    canvas: np.ndarray
    target: np.ndarray | None = None
    mask: np.ndarray | None = None
    steps: int = 16
    seed: int = 0
    paper: str | None = None
    options: dict = field(default_factory=dict)
    prompt: str = ""
    complete: bool = False

    def validate(self) -> None:
        check_canvas(self.canvas, "The canvas")
        if self.target is not None:
            check_canvas(self.target, "The target")
            if self.target.shape != self.canvas.shape:
                raise PaintError(
                    f"The target is {self.target.shape[1]} x {self.target.shape[0]} px but the "
                    f"canvas is {self.canvas.shape[1]} x {self.canvas.shape[0]} px; resize one "
                    "of them so that both have the same size."
                )
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)):
            raise PaintError(f"The number of steps must be a whole number, not {self.steps!r}.")
        if not 1 <= self.steps <= MAX_STEPS:
            raise PaintError(
                f"The number of steps must be between 1 and {MAX_STEPS}, not {self.steps}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise PaintError(f"The seed must be a whole number, not {self.seed!r}.")
        if not 0 <= self.seed < 2**63:
            raise PaintError(f"The seed must be 0 or more, not {self.seed}.")
        if self.mask is not None:
            if self.mask.shape != self.canvas.shape[:2]:
                raise PaintError(
                    f"The mask is {self.mask.shape[1]} x {self.mask.shape[0]} px but the canvas "
                    f"is {self.canvas.shape[1]} x {self.canvas.shape[0]} px; use a mask of the "
                    "canvas's size."
                )
            if not np.any(self.mask):
                raise PaintError(
                    "The mask is empty, so there is nowhere to paint; mark the region to work "
                    "in with white (or opaque) pixels."
                )
        if self.paper is not None:
            paper_rgba(self.paper, self.canvas)  # a name it cannot read is refused now
        if not isinstance(self.prompt, str) or len(self.prompt) > MAX_PROMPT:
            raise PaintError(f"The prompt must be text of at most {MAX_PROMPT} characters.")
        if not isinstance(self.complete, bool):
            raise PaintError("complete must be true or false.")
        if self.complete and self.target is not None:
            raise PaintError(
                "Give either a target or ask to complete the canvas (invent the rest), not both."
            )
        if self.complete and self.paper is not None:
            raise PaintError(
                "The paper is the blank start of a reconstruct; a completed canvas starts on "
                "itself, so drop the paper."
            )

    @property
    def goal(self) -> np.ndarray | None:
        """The picture the process ends on; None when the engine invents it (complete)."""
        if self.complete:
            return None
        return self.canvas if self.target is None else self.target

    @property
    def starts_on_canvas(self) -> bool:
        """Whether frame 0 is the canvas (with a target, or completing) or blank paper."""
        return self.target is not None or self.complete

    def first_frame(self) -> np.ndarray:
        """Frame 0: the canvas itself, or blank paper when reconstructing."""
        if self.starts_on_canvas:
            return self.canvas.copy()
        frame = np.empty_like(self.canvas)
        frame[...] = paper_rgba(self.paper, self.canvas)
        return frame


def check_canvas(canvas: np.ndarray, what: str) -> None:
    if not isinstance(canvas, np.ndarray) or canvas.dtype != np.uint8:
        raise PaintError(f"{what} must be 8-bit RGBA pixels (a uint8 array).")
    if canvas.ndim != 3 or canvas.shape[2] != 4:
        raise PaintError(f"{what} must have four channels (RGBA), not shape {canvas.shape}.")
    height, width = canvas.shape[:2]
    if width == 0 or height == 0:
        raise PaintError(f"{what} is empty (0 px); give a picture with pixels in it.")
    if max(width, height) > MAX_SIDE:
        raise PaintError(
            f"{what} is {width} x {height} px, larger than the {MAX_SIDE} px per side Paintstep "
            f"paints; scale it down to at most {MAX_SIDE} px on its longer side."
        )


def paper_rgba(paper: str | None, canvas: np.ndarray) -> tuple[int, int, int, int]:
    """The RGBA colour of blank paper for a reconstruct."""
    if paper is None:
        return (255, 255, 255, 255) if np.all(canvas[..., 3] == 255) else (0, 0, 0, 0)
    name = paper.strip().lower()
    if name == "transparent":
        return (0, 0, 0, 0)
    if len(name) in (3, 6) and all(c in "0123456789abcdef" for c in name):
        name = "#" + name  # hex without its #, as earlier versions took it
    try:
        colour = ImageColor.getrgb(name)  # CSS names (black, ivory, ...), #rgb, #rrggbb, rgb()
    except ValueError:
        raise PaintError(
            f"Unknown paper {paper!r}: use a colour name such as 'white' or 'black', "
            "'transparent', or a colour such as '#f4ecd8'."
        ) from None
    return (*colour[:3], 255)


def composite(frame: np.ndarray, layer: StepLayer) -> None:
    """Composite `layer` over `frame` in place (straight alpha, normal blending)."""
    if layer.is_empty:
        return
    height, width = frame.shape[:2]
    if (
        layer.x < 0
        or layer.y < 0
        or layer.x + layer.width > width
        or layer.y + layer.height > height
    ):
        raise PaintError(
            f"Step {layer.index} lies at {layer.bbox}, outside the {width} x {height} px canvas."
        )
    if not frame.flags.c_contiguous:
        raise ValueError("composite needs a C-contiguous frame")
    # Each pixel moves as one 32-bit word, straight in the frame, a band of rows at a time so
    # that temporaries stay small on big canvases, the bands on all cores. Where a band is
    # mostly clear only its painted pixels are blended; where it is mostly painted over an
    # opaque frame, all of it (clear pixels come out of the blend as they were).
    words = frame.view(np.uint32).reshape(-1)
    rows = slice(layer.y, layer.y + layer.height)
    area = frame.view(np.uint32)[rows, layer.x : layer.x + layer.width, 0]
    pixels = np.ascontiguousarray(layer.pixels).view(np.uint32)[..., 0]

    def blend_band(start: int, stop: int) -> None:
        for top in range(start, stop, BAND_ROWS):
            band = pixels[top : min(top + BAND_ROWS, stop)]
            painted = band >= PAINTED
            count = np.count_nonzero(painted)
            if count == 0:
                continue
            below = area[top : top + len(band)]
            if count > band.size * DENSE and (below >= np.uint32(0xFF000000)).all():
                below[...] = blend_opaque_words(below, band)
                continue
            rows, cols = np.nonzero(painted)
            spots = (rows + (layer.y + top)) * width + (cols + layer.x)
            np.put(words, spots, blend_words(np.take(words, spots), band[rows, cols]))

    in_bands(layer.height, blend_band)


BAND_ROWS = 256
PAINTED = np.uint32(0x01000000)  # an RGBA word (little-endian) with some alpha
DENSE = 0.25  # of a band's pixels painted: blending all of it is then faster than picking


def blend_over(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """`src` over `dst`, both straight-alpha uint8 RGBA of one shape; returns a new array."""
    out = np.ascontiguousarray(dst).copy()
    words = out.view(np.uint32).reshape(-1)
    source = np.ascontiguousarray(src).view(np.uint32).reshape(-1)
    hit = np.flatnonzero(source.view(np.uint8)[3::4])
    np.put(words, hit, blend_words(np.take(words, hit), np.take(source, hit)))
    return out


def blend_words(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Normal blending of (n,) RGBA pixels packed in uint32 words: src over dst."""
    s = src.view(np.uint8).reshape(-1, 4)
    d = dst.view(np.uint8).reshape(-1, 4)
    if d.size == 0 or (dst >= np.uint32(0xFF000000)).all():
        return blend_opaque_words(dst, src)
    painted = np.empty((len(src), 4), np.uint8)
    s = s.astype(np.float32)
    d = d.astype(np.float32)
    sa = s[:, 3:] * np.float32(1 / 255)
    below = d[:, 3:] * np.float32(1 / 255) * (1 - sa)
    out_a = sa + below
    rgb = s[:, :3] * sa + d[:, :3] * below
    np.divide(rgb, out_a, out=rgb, where=out_a > 0)
    # Where both are fully transparent, keep dst's hidden colour rather than inventing black.
    rgb = np.where(out_a > 0, rgb, d[:, :3])
    np.rint(np.clip(rgb, 0, 255), out=rgb)
    painted[:, :3] = rgb
    painted[:, 3] = np.rint(out_a[:, 0] * 255)
    return painted.view(np.uint32).reshape(-1)


def premultiplied(pixels: np.ndarray) -> np.ndarray:
    """Straight RGBA uint8 pixels, (H, W, 4) or (n, 4), as premultiplied RGBA uint8 of the same
    shape: each colour times alpha / 255, rounded to the nearest level (as Pillow's "RGBa" and
    skia hold them). Opaque pixels come back as they are, not copied."""
    if is_opaque(pixels):
        return pixels
    if pixels.ndim == 3:
        return np.asarray(Image.fromarray(np.ascontiguousarray(pixels), "RGBA").convert("RGBa"))
    out = pixels.copy()
    out[..., :3] = (pixels[..., :3].astype(np.uint16) * pixels[..., 3:] + 127) // 255
    return out


def solve_over(below: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """(n, 4) straight RGBA pixels that, composited over `below`, give `wanted` (as near as
    normal blending can: paint laid over only adds opacity)."""
    da = below[:, 3:].astype(np.float32) / 255.0
    wa = wanted[:, 3:].astype(np.float32) / 255.0
    alpha = np.where(da >= 1.0, 1.0, np.clip((wa - da) / np.maximum(1.0 - da, 1e-6), 0, 1))
    alpha = np.where(wa >= 1.0, 1.0, alpha)
    below_rgb = below[:, :3] * da * (1 - alpha)
    rgb = (wanted[:, :3] * np.maximum(wa, alpha + da * (1 - alpha)) - below_rgb) / np.maximum(
        alpha, 1e-6
    )
    out = np.empty_like(wanted)
    out[:, :3] = np.clip(np.rint(rgb), 0, 255)
    out[:, 3:] = np.rint(alpha * 255)
    return out


LANES = np.uint32(0x00FF00FF)


def blend_opaque_words(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """src over an opaque dst, exactly rounded, in integers on packed words.

    Two channels share one word (red and blue, green and alpha) as 16-bit lanes, and x / 255
    rounded is (x + 128 + ((x + 128) >> 8)) >> 8 in each lane. In place where it can be: at
    4096 px a step blends millions of pixels.
    """
    u = np.uint32
    alpha = src >> u(24)
    rest = u(255) - alpha
    red_blue = src & LANES
    red_blue *= alpha
    scratch = dst & LANES
    scratch *= rest
    red_blue += scratch
    green = src >> u(8)
    green &= u(0xFF)
    green *= alpha
    np.right_shift(dst, u(8), out=scratch)
    scratch &= u(0xFF)
    scratch *= rest
    green += scratch
    red_blue += u(0x00800080)
    np.right_shift(red_blue, u(8), out=scratch)
    scratch &= LANES
    red_blue += scratch
    red_blue >>= u(8)
    red_blue &= LANES
    green += u(0x80)
    np.right_shift(green, u(8), out=scratch)
    green += scratch
    green &= u(0xFF00)
    red_blue |= green
    red_blue |= u(0xFF000000)
    return red_blue


def frames(start: np.ndarray, layers: Iterable[StepLayer]) -> Iterator[np.ndarray]:
    """Frames 1..N: each layer composited over the frames before it (copies)."""
    frame = start.copy()
    for layer in layers:
        composite(frame, layer)
        yield frame.copy()


def thumbnail(frame: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """A small RGBA picture of `frame`, at most `side` px on its longer side."""
    return Thumbnail(frame, side).picture()


class Thumbnail:
    """The thumbnail of a frame that changes a region at a time, kept up to date cheaply.

    The frame is box-reduced by a whole factor, region by region, then scaled to size.
    """

    def __init__(self, frame: np.ndarray, side: int = THUMBNAIL_SIDE) -> None:
        height, width = frame.shape[:2]
        self.scale = min(1.0, side / max(width, height))
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        self.factor = max(1, int(1 / self.scale))
        self.reduced = self.reduce(frame)

    def reduce(self, pixels: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return pixels.copy()
        # Pillow premultiplies RGBA to reduce it; opaque pixels need no such round trip.
        mode = "RGBX" if is_opaque(pixels) else "RGBA"
        return np.asarray(Image.fromarray(pixels, mode).reduce(self.factor)).copy()

    def update(self, frame: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The thumbnail after the frame changed inside x0..x1, y0..y1."""
        f = self.factor
        height, width = frame.shape[:2]
        left, top = x0 // f * f, y0 // f * f
        right, bottom = min(width, -(-x1 // f) * f), min(height, -(-y1 // f) * f)
        if right > left and bottom > top:
            block = self.reduce(np.ascontiguousarray(frame[top:bottom, left:right]))
            self.reduced[
                top // f : top // f + block.shape[0], left // f : left // f + block.shape[1]
            ] = block
        return self.picture()

    def picture(self) -> np.ndarray:
        if (self.reduced.shape[1], self.reduced.shape[0]) == self.size:
            return self.reduced.copy()
        image = Image.fromarray(self.reduced, "RGBA").resize(self.size, Image.Resampling.BILINEAR)
        return np.asarray(image).copy()


def is_opaque(pixels: np.ndarray) -> bool:
    """Whether every pixel of an RGBA uint8 picture is opaque (quickly, on whole words)."""
    if pixels.size and pixels.flags.c_contiguous:
        return bool(pixels.view(np.uint32).min() >= np.uint32(0xFF000000))
    return bool(pixels[..., 3].min(initial=255) == 255)


def crop_to_paint(pixels: np.ndarray, x: int, y: int) -> tuple[np.ndarray, int, int]:
    """Trim fully transparent rows and columns; returns (pixels, x, y) of what is left."""
    if pixels.size and pixels.flags.c_contiguous:
        # Alpha is each pixel's high byte: a word at 2**24 or more is painted. Whole words
        # reduce many times faster than every fourth byte.
        words = pixels.view(np.uint32)[..., 0]
        rows = np.flatnonzero(words.max(axis=1) >= PAINTED)
        if rows.size == 0:
            return pixels[:0, :0], x, y
        cols = np.flatnonzero(words[rows[0] : rows[-1] + 1].max(axis=0) >= PAINTED)
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return pixels[top:bottom, left:right], x + int(left), y + int(top)
    alpha = pixels[..., 3]
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return pixels[:0, :0], x, y
    cols = np.flatnonzero(alpha[rows[0] : rows[-1] + 1].any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return pixels[top:bottom, left:right], x + int(left), y + int(top)

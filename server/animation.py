"""The process as an animation: a GIF and an MP4 encoded a frame at a time, as frames come.

Neither keeps the frames: memory stays flat however many steps there are. Both pace the frames
by `timing`: a steady pace for the count of frames expected, and a pause on the last one.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import GifImagePlugin, Image

ANIMATION_SIDE = 768  # longer side of the GIF and MP4
LAST_PAUSE = 2000  # ms on the finished picture


def animation_frame(frame: np.ndarray) -> Image.Image:
    """A frame for the GIF and MP4: on white where transparent, at most ANIMATION_SIDE px.

    Put on paper, box-reduced by a whole factor down to at least twice the size, then scaled
    to size with a Hamming filter: half the work of Lanczos and 49 dB from it on painted frames
    at 1024-4096 px (docs/benchmarks.md), a difference neither the GIF's 255 colours nor the
    MP4 keep.
    """
    return AnimationFrames(frame).image()


class AnimationFrames:
    """The animation frames of a process, kept up to date a step's region at a time.

    What animation_frame makes of the whole frame, within a level or two (Pillow's filter
    weights for a region and for the whole differ in their last bit): a step repaints only its
    box, on a 1024 px picture 60 % of the frame on average, and the paper, the reduction and
    the filter run there alone.
    """

    def __init__(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        longest = max(width, height)
        self.scale = min(1.0, ANIMATION_SIDE / longest)
        self.size = (
            (max(2, round(width * self.scale)), max(2, round(height * self.scale)))
            if self.scale < 1
            else (width, height)
        )
        self.factor = max(1, int(1 / self.scale / 2))
        # RGBX, four bytes a pixel, as Pillow keeps RGB: no gathering of three channels.
        self.reduced = np.empty((-(-height // self.factor), -(-width // self.factor), 4), np.uint8)
        self.picture = np.empty((self.size[1], self.size[0], 4), np.uint8)
        self.update(frame, 0, 0, width, height)

    def update(
        self, frame: np.ndarray, x0: int, y0: int, x1: int, y1: int
    ) -> tuple[Image.Image, tuple[int, int, int, int]]:
        """The animation frame after `frame` changed inside x0..x1, y0..y1, and the box of it
        that changed (left, top, right, bottom)."""
        height, width = frame.shape[:2]
        f = self.factor
        left, top = x0 // f * f, y0 // f * f
        right, bottom = min(width, -(-x1 // f) * f), min(height, -(-y1 // f) * f)
        if right <= left or bottom <= top:
            return self.image(), (0, 0, 0, 0)
        block = on_paper(np.ascontiguousarray(frame[top:bottom, left:right]))
        if f > 1:
            block = np.asarray(Image.fromarray(block, "RGBX").reduce(f))
        self.reduced[
            top // f : top // f + block.shape[0], left // f : left // f + block.shape[1]
        ] = block
        if self.scale == 1:
            self.picture[top:bottom, left:right] = self.reduced[top:bottom, left:right]
            return self.image(), (left, top, right, bottom)
        # The output pixels whose filter window reaches the change (Hamming's is one pixel
        # each way; a few more are taken).
        ratio_x = self.reduced.shape[1] / self.size[0]
        ratio_y = self.reduced.shape[0] / self.size[1]
        box = (
            max(0, int(left / f / ratio_x) - 4),
            max(0, int(top / f / ratio_y) - 4),
            min(self.size[0], int(-(-right // f) / ratio_x) + 5),
            min(self.size[1], int(-(-bottom // f) / ratio_y) + 5),
        )
        source = (box[0] * ratio_x, box[1] * ratio_y, box[2] * ratio_x, box[3] * ratio_y)
        region = Image.fromarray(self.reduced, "RGBX").resize(
            (box[2] - box[0], box[3] - box[1]), Image.Resampling.HAMMING, box=source
        )
        self.picture[box[1] : box[3], box[0] : box[2]] = np.asarray(region)
        return self.image(), box

    def image(self) -> Image.Image:
        return Image.fromarray(self.picture, "RGBX").convert("RGB")  # its own pixels


def on_paper(pixels: np.ndarray) -> np.ndarray:
    """RGBA pixels as RGBX (the fourth byte 255) on white paper where they are transparent."""
    if pixels[..., 3].min() == 255:
        return pixels
    alpha = pixels[..., 3:].astype(np.uint16)
    rgb = (pixels[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return np.concatenate([rgb.astype(np.uint8), np.full_like(pixels[..., 3:], 255)], axis=2)


def pace(count: int) -> int:
    """Milliseconds per frame of an animation of `count` frames, but for the last."""
    return max(60, min(400, 6000 // max(count, 1)))


def timing(count: int) -> list[int]:
    """Milliseconds per animation frame: a steady pace, and a pause on the finished picture."""
    return [pace(count)] * (count - 1) + [LAST_PAUSE]


class GifStream:
    """A looping GIF written as its frames come.

    Frame 0 is whole; each later frame is the box where it differs from the one before,
    quantized on its own (fast octree, no dither) with unchanged pixels left transparent so
    the picture below shows through. A frame like the one before lengthens that one instead.
    The frame times are written when the stream closes, from the count of frames it got.
    """

    def __init__(self, path: Path) -> None:
        self.file: BinaryIO = open(path, "wb")
        self.previous: np.ndarray | None = None
        self.frames = 0
        self.delays: list[tuple[int, list[int]]] = []  # (file offset, frames it shows)

    def add(self, image: Image.Image, near: tuple[int, int, int, int] | None = None) -> None:
        """The next frame; `near` (left, top, right, bottom), when given, holds every pixel
        that differs from the frame before."""
        # One 32-bit word a pixel: a frame is compared with the one before in one pass.
        rgbx = np.asarray(image.convert("RGBX"))
        rgb, words = rgbx[..., :3], rgbx.view(np.uint32)[..., 0]
        index = self.frames
        self.frames += 1
        if self.previous is None:
            self.write_header(image.size)
            picture, offset, clear = quantize(rgb), (0, 0), None
        else:
            x0, y0, x1, y1 = near or (0, 0, rgb.shape[1], rgb.shape[0])
            near_box = (slice(y0, y1), slice(x0, x1))
            changed = words[near_box] != self.previous[near_box]
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size == 0:
                self.delays[-1][1].append(index)
                return
            top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            box = (slice(y0 + top, y0 + bottom), slice(x0 + left, x0 + right))
            picture, offset = quantize(rgb[box]), (int(x0 + left), int(y0 + top))
            clear = ~changed[top:bottom, left:right]
        self.previous = words
        params = {"duration": LAST_PAUSE, "disposal": 1, "include_color_table": True}
        if clear is not None and clear.any():
            picture, params["transparency"] = with_clear_index(picture, clear)
        chunks = GifImagePlugin.getdata(picture, offset, **params)
        # The graphic control extension comes first; its delay is patched in close().
        self.delays.append((self.file.tell() + 4, [index]))
        for chunk in chunks:
            self.file.write(chunk)

    def write_header(self, size: tuple[int, int]) -> None:
        loop = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
        self.file.write(b"GIF89a" + o16(size[0]) + o16(size[1]) + b"\x00\x00\x00" + loop)

    def close(self) -> None:
        """End the file and write each frame's time, from the number of frames it got."""
        try:
            if self.frames == 0:
                return
            self.file.write(b";")
            durations = timing(self.frames)
            for offset, shown in self.delays:
                self.file.seek(offset)
                self.file.write(o16(sum(durations[k] for k in shown) // 10))
        finally:
            self.file.close()


def quantize(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    return image.quantize(255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def with_clear_index(picture: Image.Image, clear: np.ndarray) -> tuple[Image.Image, int]:
    """`picture` with the `clear` pixels set to a palette entry of their own; that entry."""
    palette = picture.getpalette() or []
    index = len(palette) // 3
    indices = np.asarray(picture).copy()
    indices[clear] = index
    cleared = Image.fromarray(indices, "P")
    cleared.putpalette(palette + [0, 0, 0])
    return cleared, index


def o16(value: int) -> bytes:
    return int(value).to_bytes(2, "little")


class Mp4Stream:
    """H.264 (yuv420p, so every player opens it) encoded as its frames come.

    Frames are `pace(expected)` ms apart, and the last is shown for its pause; yuv420p needs
    even sides, so odd ones get a white row or column rather than losing one.
    """

    def __init__(self, path: Path, expected: int) -> None:
        self.path = path
        self.step = pace(expected)
        self.container = None
        self.stream = None
        self.last: Image.Image | None = None
        self.frames = 0

    def add(self, image: Image.Image, near: tuple[int, int, int, int] | None = None) -> None:
        """The next frame (`near`, the box that changed, as GifStream takes it: unused)."""
        if self.container is None:
            self.open(image.size)
        self.encode(image, self.frames * self.step)
        self.last = image
        self.frames += 1

    def open(self, size: tuple[int, int]) -> None:
        import av  # only when writing a video

        width, height = (max(2, side + side % 2) for side in size)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=1000)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = self.stream.time_base = Fraction(1, 1000)
        # veryfast: 2.5x less CPU than the default preset, a smaller file, 0.6 dB less.
        self.stream.options = {"crf": "20", "preset": "veryfast"}

    def encode(self, image: Image.Image, moment: int) -> None:
        import av

        size = (self.stream.width, self.stream.height)
        if image.size != size or image.mode != "RGB":
            padded = Image.new("RGB", size, (255, 255, 255))
            padded.paste(image, (0, 0))
            image = padded
        picture = av.VideoFrame.from_image(image)
        picture.pts = moment
        self.container.mux(self.stream.encode(picture))

    def close(self) -> None:
        if self.container is None:
            return
        try:
            # The last picture once more at the end, so that players hold it for its pause.
            self.encode(self.last, (self.frames - 1) * self.step + LAST_PAUSE - 40)
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()
            self.container = None


def write_gif(path: Path, frames: list[Image.Image]) -> None:
    gif = GifStream(path)
    for image in frames:
        gif.add(image)
    gif.close()


def write_mp4(path: Path, frames: list[Image.Image]) -> None:
    video = Mp4Stream(path, len(frames))
    for image in frames:
        video.add(image)
    video.close()

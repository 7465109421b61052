"""Where the frames of a recorded painting process come from: a Krita Recorder folder, a folder
of numbered frames, or a video file. Each frame is read as RGB on white paper."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..wire.errors import PaintError

PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
VIDEOS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
RECORDER_NAME = re.compile(r"^\d{7}$")  # Krita's Recorder: 0000001.jpg, 0000002.jpg, ...
CAPTION_FILE = "caption.txt"

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Frame:
    """One recorded frame: its name, the canvas size it was taken at, its RGB pixels (possibly
    smaller than that size, when read for a smaller use)."""

    name: str
    size: tuple[int, int]
    rgb: np.ndarray


@dataclass(frozen=True)
class Recording:
    """One painting process on disk: a folder of frames or a video."""

    id: str
    kind: str  # "recorder", "frames" or "video"
    path: Path
    caption: str
    video_rate: float = 2.0  # frames per second read from a video

    def frames(self, side: int, warn: Warn, wanted: set[str] | None = None) -> Iterator[Frame]:
        """The frames in order, each read at about `side` px on its longer side (at least);
        with `wanted`, only the frames of those names. A frame that cannot be read is skipped
        with a warning naming it."""
        if self.kind == "video":
            yield from video_frames(self.path, self.video_rate, side, warn, wanted)
            return
        for path in numbered(self.path):
            if wanted is not None and path.name not in wanted:
                continue
            frame = read_picture(path, side, warn)
            if frame is not None:
                yield frame


def find_recordings(source: Path, caption: str = "", video_rate: float = 2.0) -> list[Recording]:
    """The recordings at `source`: a video, a folder of frames (a Recorder's folder for one
    document among them), or a folder of those (Krita's Recorder folder, one per document)."""
    if not source.exists():
        raise PaintError(f"{source} does not exist; give a Recorder folder, frames or a video.")
    if source.is_file():
        if source.suffix.lower() not in VIDEOS:
            raise PaintError(
                f"{source} is not a video ({', '.join(VIDEOS)}); give a video, a folder of "
                "numbered frames or Krita's Recorder folder."
            )
        return [recording(source, caption, video_rate)]
    if numbered(source):
        return [recording(source, caption, video_rate)]
    found = [
        recording(entry, caption, video_rate)
        for entry in sorted(source.iterdir())
        if (entry.is_dir() and numbered(entry))
        or (entry.is_file() and entry.suffix.lower() in VIDEOS)
    ]
    if not found:
        raise PaintError(
            f"{source} holds no frames, no folders of frames and no videos; give Krita's "
            "Recorder folder (one folder per document), a folder of numbered frames or a video."
        )
    return found


def recording(path: Path, caption: str, video_rate: float) -> Recording:
    """The recording at `path`, captioned by its caption file when it has one."""
    if path.is_file():
        kind, caption_path = "video", path.with_suffix(".txt")
    else:
        names = [p.stem for p in numbered(path)]
        kind = "recorder" if all(RECORDER_NAME.match(n) for n in names) else "frames"
        caption_path = path / CAPTION_FILE
    if caption_path.is_file():
        caption = caption_path.read_text(encoding="utf-8").strip()
    return Recording(
        safe_key(path.stem if path.is_file() else path.name), kind, path, caption, video_rate
    )


def safe_key(name: str) -> str:
    """A sample key: no dots (they separate a key from its parts in a shard) nor slashes."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "process"


def numbered(folder: Path) -> list[Path]:
    """The pictures in `folder`, in the order of the last number in their names."""

    def order(path: Path) -> tuple[int, str]:
        numbers = re.findall(r"\d+", path.stem)
        return (int(numbers[-1]) if numbers else -1, path.name)

    pictures = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICTURES]
    return sorted(pictures, key=order)


def read_picture(path: Path, side: int, warn: Warn) -> Frame | None:
    """The picture at `path` as RGB on white, reduced towards `side` px (never below it)."""
    try:
        with Image.open(path) as image:
            size = image.size
            image.draft("RGB", (side, side))  # JPEG decodes at 1/2, 1/4, 1/8 straight away
            image = ImageOps.exif_transpose(image)
            image.load()
            rgb = on_white(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        warn(f"skipped {path}: it could not be read as a picture ({error}).")
        return None
    return Frame(path.name, size, reduce_to(rgb, side))


def on_white(image: Image.Image) -> np.ndarray:
    """An opened picture as (H, W, 3) uint8 RGB, its transparency shown over white paper."""
    if image.mode in ("RGB", "L"):
        return np.asarray(image.convert("RGB"))
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(paper, image.convert("RGBA")).convert("RGB"))


def reduce_to(rgb: np.ndarray, side: int) -> np.ndarray:
    """`rgb` shrunk by a whole factor while its longer side stays at least `side` px."""
    factor = max(rgb.shape[:2]) // side
    if factor < 2:
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb).reduce(factor))


def video_frames(
    path: Path, rate: float, side: int, warn: Warn, wanted: set[str] | None
) -> Iterator[Frame]:
    """A video's frames, `rate` a second (all of them if it has fewer), named by their number
    in the video."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        warn(f"skipped {path}: it could not be read as a video ({error}).")
        return
    with container:
        if not container.streams.video:
            warn(f"skipped {path}: it holds no video stream.")
            return
        stream = container.streams.video[0]
        last_slot = -1
        try:
            for number, frame in enumerate(container.decode(stream)):
                time = float(frame.time) if frame.time is not None else number / 25.0
                slot = int(time * rate + 1e-6)  # one frame per 1/rate s, the first in it
                if slot <= last_slot:
                    continue
                last_slot = slot
                name = f"{number:07d}"
                if wanted is not None and name not in wanted:
                    continue
                size = (frame.width, frame.height)
                scale = min(1.0, 2 * side / max(size))  # decode small for the analysis pass
                width, height = (max(1, round(n * scale)) for n in size)
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                yield Frame(name, size, reduce_to(rgb, side))
        except av.FFmpegError as error:
            warn(f"{path} ends early: the rest could not be decoded ({error}).")

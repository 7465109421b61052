"""A result folder: the process on disk, as `paintstep paint` writes it and the viewer reads it.

    manifest.json        what the folder holds; "complete" is true only once every step is in
    frames/frame_0000.png    frame 0 (the start) .. frame N, full size
    layers/step_0001.png     step k's layer; its place on the canvas is in the manifest
    thumbs/thumb_0001.png    frame k, small
    process.gif, process.mp4 the process as an animation

The manifest is rewritten (atomically) after every step, so a folder that is still being written,
or whose writer died, says so: "state" is "running" until it is "finished", "cancelled" or
"failed". A lean folder (the server's job cache) keeps frame 0, the layers and the thumbnails
only; its frames are rebuilt from the layers when read.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .process import PaintError, StepLayer, composite, thumbnail

FORMAT = "paintstep-result"
FORMAT_VERSION = 1
ANIMATION_SIDE = 768  # longer side of the GIF and MP4
OWN_ENTRIES = ("manifest.json", "frames", "layers", "thumbs", "process.gif", "process.mp4")


@dataclass
class Result:
    """A result folder read back: its manifest and where its files are."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def state(self) -> str:
        return str(self.manifest.get("state", "finished" if self.complete else "interrupted"))

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.manifest["steps"]

    def start(self) -> np.ndarray:
        return read_png(self.folder / self.manifest["start"])

    def frame(self, index: int) -> np.ndarray:
        """Frame `index`: read, or for a lean folder rebuilt from the layers."""
        if index == 0:
            return self.start()
        path = self.folder / self.steps[index - 1]["frame"]
        if path.exists():
            return read_png(path)
        frame = self.start()
        for k in range(1, index + 1):
            composite(frame, self.layer(k))
        return frame

    def thumbnail(self, index: int) -> np.ndarray:
        entry = self.steps[index - 1]
        if "thumbnail" in entry:
            return read_png(self.folder / entry["thumbnail"])
        return thumbnail(self.frame(index))

    def layer(self, index: int) -> StepLayer:
        entry = self.steps[index - 1]
        pixels = read_png(self.folder / entry["layer"]) if entry["width"] else empty_pixels()
        return StepLayer(index, entry["x"], entry["y"], pixels)


def check_folder(folder: Path) -> None:
    """Refuse a folder that a new result may not replace: a file, or someone else's files."""
    if folder.exists() and not folder.is_dir():
        raise PaintError(f"{folder} is a file; choose a folder for --out.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "manifest.json").exists():
        raise PaintError(
            f"{folder} already holds files that are not a Paintstep result; choose another "
            "--out folder or empty this one."
        )


def prepare_folder(folder: Path) -> None:
    """Make `folder` ready for a new result, replacing an earlier result but nothing else."""
    check_folder(folder)
    if folder.is_dir():
        for name in OWN_ENTRIES:
            entry = folder / name
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.exists():
                entry.unlink()
    try:
        for name in ("frames", "layers", "thumbs"):
            (folder / name).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PaintError(
            f"Cannot write to {folder} ({error.strerror}); choose another --out."
        ) from None


class ResultWriter:
    """Writes a process into a result folder as its steps arrive.

    `lean` keeps only what rebuilds the process (frame 0, layers, thumbnails): no full frames,
    no animations.
    """

    def __init__(
        self, folder: Path, start: np.ndarray, info: dict[str, Any], lean: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.lean = lean
        prepare_folder(self.folder)
        height, width = start.shape[:2]
        self.manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "complete": False,
            "state": "running",
            "width": width,
            "height": height,
            **info,
            "start": "frames/frame_0000.png",
            "steps": [],
        }
        self.animation: list[Image.Image] = [] if lean else [animation_frame(start)]
        write_png(self.folder / self.manifest["start"], start)
        self.save_manifest()

    def add(self, step: StepLayer, frame: np.ndarray | None = None) -> None:
        """Write step k; `frame` (frame k) is needed unless the folder is lean."""
        entry = {
            "index": step.index,
            "x": step.x,
            "y": step.y,
            "width": step.width,
            "height": step.height,
            "layer": f"layers/step_{step.index:04d}.png",
            "frame": f"frames/frame_{step.index:04d}.png",
        }
        if not step.is_empty:
            write_png(self.folder / entry["layer"], step.pixels)
        if step.thumbnail is not None:
            entry["thumbnail"] = f"thumbs/thumb_{step.index:04d}.png"
            write_png(self.folder / entry["thumbnail"], step.thumbnail)
        if not self.lean:
            if frame is None:
                raise ValueError("a full result folder needs every frame")
            write_png(self.folder / entry["frame"], frame)
            self.animation.append(animation_frame(frame))
        self.manifest["steps"].append(entry)
        self.save_manifest()

    def finish(self) -> None:
        """Write the animations (unless lean) and mark the result complete."""
        if not self.lean:
            self.manifest["gif"] = "process.gif"
            self.manifest["mp4"] = "process.mp4"
            write_gif(self.folder / "process.gif", self.animation)
            write_mp4(self.folder / "process.mp4", self.animation)
        self.manifest["complete"] = True
        self.end("finished")

    def end(self, state: str, message: str = "") -> None:
        """Record how the process ended: finished, cancelled or failed (with a sentence)."""
        self.manifest["state"] = state
        if message:
            self.manifest["message"] = message
        self.save_manifest()

    def save_manifest(self) -> None:
        path = self.folder / "manifest.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.manifest, indent=1))
        os.replace(temporary, path)


def load_result(folder: str | Path) -> Result:
    """A result folder, checked enough that its files can be read."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.exists():
        raise PaintError(f"{folder} is not a Paintstep result: it has no manifest.json.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PaintError(f"The manifest of {folder} cannot be read ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PaintError(f"{folder}/manifest.json is not a Paintstep result manifest.")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise PaintError(
            f"{folder} was written by a newer Paintstep (format {manifest['version']}); "
            "update Paintstep to read it."
        )
    return Result(folder, manifest)


def empty_pixels() -> np.ndarray:
    return np.zeros((0, 0, 4), np.uint8)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA")).copy()


def write_png(path: Path, rgba: np.ndarray) -> None:
    Image.fromarray(rgba, "RGBA").save(path, compress_level=3)


def animation_frame(frame: np.ndarray) -> Image.Image:
    """A frame for the GIF and MP4: on white where transparent, at most ANIMATION_SIDE px."""
    image = Image.fromarray(frame, "RGBA")
    longest = max(image.size)
    if longest > ANIMATION_SIDE:
        scale = ANIMATION_SIDE / longest
        size = (max(2, round(image.width * scale)), max(2, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(paper, image).convert("RGB")


def timing(count: int) -> list[int]:
    """Milliseconds per animation frame: a steady pace, and a pause on the finished picture."""
    per_frame = max(60, min(400, 6000 // max(count, 1)))
    return [per_frame] * (count - 1) + [2000]


def write_gif(path: Path, frames: list[Image.Image]) -> None:
    frames[0].save(
        path, save_all=True, append_images=frames[1:], duration=timing(len(frames)), loop=0
    )


def write_mp4(path: Path, frames: list[Image.Image]) -> None:
    """H.264 (yuv420p, so every player opens it); frame times as in the GIF.

    yuv420p needs even sides: odd ones get a white row or column rather than losing one.
    """
    import av  # only when writing a video

    width, height = (max(2, side + side % 2) for side in frames[0].size)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        stream.options = {"crf": "20"}
        durations = timing(len(frames))
        # The last picture once more at the end, so that players hold it for its pause.
        moments = np.cumsum([0] + durations)[:-1].tolist() + [sum(durations) - 40]
        for image, moment in zip(frames + frames[-1:], moments):
            padded = Image.new("RGB", (width, height), (255, 255, 255))
            padded.paste(image, (0, 0))
            picture = av.VideoFrame.from_image(padded)
            picture.pts = moment
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))

"""A result folder: the process on disk, as `paintstep paint` writes it and the viewer reads it.

    manifest.json        what the folder holds; "complete" is true only once every step is in
    frames/frame_0000.png    frame 0 (the start) .. frame N, full size (or some of them)
    layers/step_0001.png     step k's layer; its place on the canvas is in the manifest (a step
                             that paints nothing, 0 x 0, lists no layer file and has none)
    thumbs/thumb_0001.png    frame k, small (only when "thumbs" is asked for)
    process.gif, process.mp4 the process as an animation

The manifest is rewritten (atomically) after every step, so a folder that is still being written,
or whose writer died, says so: "state" is "running" until it is "finished", "cancelled" or
"failed". "outputs" says what was asked for. A frame that was not written is rebuilt from the
nearest one before it and the layers in between: without "frames", frame 0, every
CHECKPOINT_STEPS-th frame and the last are written all the same. A lean folder (the server's
job cache) keeps frame 0 and the last, the layers and the thumbnails.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .animation import (
    AnimationFrames,
    GifStream,
    Mp4Stream,
    animation_frame,
    timing,
    write_gif,
    write_mp4,
)
from .png import encode_png, read_png, write_png
from .process import PaintError, PaintRequest, StepLayer, composite, thumbnail

__all__ = ["JobState", "Result", "ResultWriter", "load_result", "animation_frame", "timing"]
__all__ += ["write_gif", "write_mp4"]  # the animations' home is paintstep.animation
__all__ += ["encode_png", "read_png", "write_png"]  # the PNGs' is paintstep.png

FORMAT = "paintstep-result"
FORMAT_VERSION = 1
OUTPUTS = ("frames", "thumbs", "gif", "mp4")  # what a writer may write beyond the layers
CHECKPOINT_STEPS = 8  # without "frames", every 8th frame is written all the same
QUEUED_STEPS = 3  # steps waiting for a background writer: memory stays flat
OWN_ENTRIES = ("manifest.json", "frames", "layers", "thumbs", "process.gif", "process.mp4")


class JobState(str, Enum):
    """How far a process has come: the "state" of a manifest and of the protocol's messages,
    which carry these same strings."""

    QUEUED = "queued"  # a server's job, waiting for a worker
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its writer stopped (a server killed) before it ended

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)

    @property
    def ended(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass
class Result:
    """A result folder read back: its manifest and where its files are."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def state(self) -> JobState:
        """The manifest's state; a manifest without one (or with one this version does not
        know) is finished when complete, else interrupted."""
        try:
            return JobState(self.manifest["state"])
        except (KeyError, ValueError):
            return JobState.FINISHED if self.complete else JobState.INTERRUPTED

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.manifest["steps"]

    def start(self) -> np.ndarray:
        return read_png(self.folder / self.manifest["start"])

    def frame(self, index: int) -> np.ndarray:
        """Frame `index`: read, or rebuilt from the nearest frame written before it."""
        base = next((k for k in range(index, 0, -1) if self.has_frame(k)), 0)
        frame = read_png(self.folder / self.steps[base - 1]["frame"]) if base else self.start()
        for k in range(base + 1, index + 1):
            composite(frame, self.layer(k))
        return frame

    def has_frame(self, index: int) -> bool:
        """Whether frame `index` is in the folder as a file."""
        return index == 0 or (self.folder / self.steps[index - 1]["frame"]).exists()

    def thumbnail(self, index: int) -> np.ndarray:
        entry = self.steps[index - 1]
        if "thumbnail" in entry:
            return read_png(self.folder / entry["thumbnail"])
        return thumbnail(self.frame(index))

    def layer(self, index: int) -> StepLayer:
        entry = self.steps[index - 1]
        # A step that paints nothing has no layer file (folders before 2026-12 listed one).
        painted = entry["width"] and entry.get("layer")
        pixels = read_png(self.folder / entry["layer"]) if painted else empty_pixels()
        return StepLayer(index, entry["x"], entry["y"], pixels, stage=entry.get("stage"))


def run_info(
    engine: str, request: PaintRequest, options: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """What a manifest says of the run, for `paintstep paint` and the server's jobs alike: the
    engine, the seed, the steps asked for, the engine's options as it read them (with their
    defaults), the prompt where there is one, and `more` (a server job's name, meta, created).
    Manifests written before this kept a server job's options as the client sent them."""
    info = {
        "engine": engine,
        "seed": request.seed,
        "steps_planned": request.steps,
        "options": dict(options),
    }
    if request.prompt:
        info["prompt"] = request.prompt
    return {**info, **more}


def save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write a folder's manifest atomically: a reader finds the old one or the new one, whole."""
    path = folder / "manifest.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(manifest, indent=1))
    os.replace(temporary, path)


def check_folder(folder: Path) -> None:
    """Refuse a folder that a new result may not replace: a file, or someone else's files."""
    if folder.exists() and not folder.is_dir():
        raise PaintError(f"{folder} is a file; choose a folder for --out.")
    if (
        folder.is_dir()
        and any(folder.iterdir())
        and not (folder / "manifest.json").exists()
        and not only_set_up(folder)
    ):
        raise PaintError(
            f"{folder} already holds files that are not a Paintstep result; choose another "
            "--out folder or empty this one."
        )


def only_set_up(folder: Path) -> bool:
    """Whether `folder` holds only what a run stopped before its manifest leaves: the step
    folders, with at most Paintstep's own PNGs in them (frames/frame_0000.png, ...)."""
    for entry in folder.iterdir():
        if entry.name not in ("frames", "layers", "thumbs") or not entry.is_dir():
            return False
        stem = entry.name[:-1] + "_"  # frame_, layer_, thumb_
        for inside in entry.iterdir():
            if not (inside.is_file() and inside.name.startswith(stem) and inside.suffix == ".png"):
                return False
    return True


def clear_result(folder: Path) -> None:
    """Take away a result's own entries from `folder` (and nothing else)."""
    if folder.is_dir():
        for name in OWN_ENTRIES:
            entry = folder / name
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.exists():
                entry.unlink()


def prepare_folder(folder: Path, thumbs: bool = True) -> None:
    """Make `folder` ready for a new result, replacing an earlier result but nothing else;
    `thumbs/` only where thumbnails are written."""
    check_folder(folder)
    clear_result(folder)
    try:
        for name in ("frames", "layers", "thumbs")[: 3 if thumbs else 2]:
            (folder / name).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PaintError(
            f"Cannot write to {folder} ({error.strerror}); choose another --out."
        ) from None


class ResultWriter:
    """Writes a process into a result folder as its steps arrive.

    `outputs` says what is written beyond frame 0, the layers and the manifest: "frames"
    (every frame), "thumbs", "gif", "mp4"; by default all of them. Without "frames", a
    checkpoint frame is still written every CHECKPOINT_STEPS steps and at the end, so that
    reading any frame composites a few layers at most (the viewer opens on the last).

    With `background`, the files are encoded on a thread of the writer's own while the caller
    goes on painting. `lean` (the server's job cache) writes the thumbnails and, of the
    frames, only the first and the last (the viewer opens on it); a step's layer and
    thumbnail are written before `add` returns, its frame composited on a thread of its own.
    Either way what is written is the same, byte for byte, and the manifest lists a step only
    once its layer and thumbnail are written.
    """

    def __init__(
        self,
        folder: Path,
        start: np.ndarray,
        info: dict[str, Any],
        lean: bool = False,
        outputs: Collection[str] | None = None,
        background: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.lean = lean
        self.outputs = set(("thumbs",) if lean else OUTPUTS if outputs is None else outputs)
        unknown = self.outputs - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs: {sorted(unknown)}")
        prepare_folder(self.folder, thumbs="thumbs" in self.outputs)
        height, width = start.shape[:2]
        self.manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "complete": False,
            "state": JobState.RUNNING,
            "width": width,
            "height": height,
            **info,
            "start": "frames/frame_0000.png",
            "outputs": sorted(self.outputs),
            "steps": [],
        }
        self.frame = start.copy()  # the writer's own frame k, composited from the layers
        self.frame_written = 0
        write_png(self.folder / self.manifest["start"], start)
        self.animations: list[GifStream | Mp4Stream] = []
        if "gif" in self.outputs:
            self.animations.append(GifStream(self.folder / "process.gif"))
        if "mp4" in self.outputs:
            expected = int(info.get("steps_planned", 0)) + 1
            self.animations.append(Mp4Stream(self.folder / "process.mp4", expected))
        self.animation_frames = AnimationFrames(start) if self.animations else None
        for animation in self.animations:
            animation.add(self.animation_frames.image())
        self.save_manifest()
        self.failure: BaseException | None = None  # raised again in the caller's thread
        self.steps = Queued(self.write_step, "result writer", self.failed) if background else None
        # A lean folder's last frame is a help, not a part: if it cannot be composited or
        # written, it is rebuilt from the layers.
        self.frames = Queued(self.advance_frame, "result frames") if lean else None

    def failed(self, error: BaseException) -> None:
        self.failure = error

    def add(self, step: StepLayer, frame: np.ndarray | None = None) -> None:
        """Write step k. `frame` is frame k if the caller has it; else the writer
        composites the step over frame k-1 itself."""
        if self.steps is None:
            self.write_step(step, frame)
            return
        self.raise_failure()
        self.steps.put(step, None if frame is None else frame.copy())

    def raise_failure(self) -> None:
        error = self.failure
        if error is None:
            return
        if isinstance(error, OSError):
            raise PaintError(
                f"Cannot write the result into {self.folder} ({error.strerror or error}); make "
                "room there or choose another --out."
            ) from error
        raise error

    def write_step(self, step: StepLayer, frame: np.ndarray | None) -> None:
        entry = {  # plain ints: json writes no numpy integers
            "index": int(step.index),
            "x": int(step.x),
            "y": int(step.y),
            "width": int(step.width),
            "height": int(step.height),
        }
        if not step.is_empty:  # a step that paints nothing has no layer file
            entry["layer"] = f"layers/step_{step.index:04d}.png"
            write_png(self.folder / entry["layer"], step.pixels)
        entry["frame"] = f"frames/frame_{step.index:04d}.png"
        if step.stage is not None:  # the stage of the process, when the engine names it
            entry["stage"] = str(step.stage)
        if step.thumbnail is not None and "thumbs" in self.outputs:
            entry["thumbnail"] = f"thumbs/thumb_{step.index:04d}.png"
            write_png(self.folder / entry["thumbnail"], step.thumbnail)
        if self.frames is not None:
            self.frames.put(step, None if frame is None else frame.copy())
        else:
            self.advance_frame(step, frame)
        self.manifest["steps"].append(entry)
        self.save_manifest()

    def advance_frame(self, step: StepLayer, frame: np.ndarray | None) -> None:
        """The writer's frame k from frame k-1, written when it is a checkpoint, animated."""
        if frame is None:
            composite(self.frame, step)
        else:
            self.frame = frame
        if "frames" in self.outputs or (step.index % CHECKPOINT_STEPS == 0 and not self.lean):
            self.write_frame(step.index)
        self.add_to_animations(step)

    def write_frame(self, index: int) -> None:
        path = self.folder / f"frames/frame_{index:04d}.png"
        if self.frames is None:
            write_png(path, self.frame)
        else:  # a reader of the folder sees the frame whole or not at all
            partial = path.with_suffix(".part")
            write_png(partial, self.frame)
            os.replace(partial, path)
        self.frame_written = index

    def add_to_animations(self, step: StepLayer) -> None:
        """Frame k (the writer's frame, after `step`) into the animations: only the step's
        box of it is reduced again."""
        if self.animations:
            box = (step.x, step.y, step.x + step.width, step.y + step.height)
            picture, near = self.animation_frames.update(self.frame, *box)
            for animation in self.animations:
                animation.add(picture, near)

    def stop_threads(self, drop_queued: bool) -> None:
        for queued in (self.steps, self.frames):  # the steps thread feeds the frames thread
            if queued is not None:
                queued.stop(drop_queued)

    def finish(self) -> None:
        """Write what is left (the last frame, the animations' ends); mark the result complete."""
        self.stop_threads(drop_queued=False)
        self.raise_failure()
        try:
            count = len(self.steps_written)
            frames_kept = self.frames is None or self.frames.failure is None
            if frames_kept and count and self.frame_written < count:
                self.write_frame(count)
            self.close_animations()
            self.manifest["complete"] = True
            self.end(JobState.FINISHED)
        except OSError as error:  # said as a sentence, as a failed write on the thread is
            self.failure = error
            self.manifest["complete"] = False
            self.close_animations()
            self.raise_failure()

    @property
    def steps_written(self) -> list[dict[str, Any]]:
        return self.manifest["steps"]

    def close_animations(self) -> None:
        """End the animations: they show the steps written so far. After a failed write they
        are closed but not listed."""
        animations, self.animations = self.animations, []
        first = None
        for animation in animations:  # each is closed, even after another failed to
            try:
                animation.close()
            except Exception as error:
                first = first or error
                continue
            if self.failure is None and first is None:
                name = "gif" if isinstance(animation, GifStream) else "mp4"
                self.manifest[name] = f"process.{name}"
        if first is not None and self.failure is None:
            raise first

    def end(self, state: JobState | str, message: str = "") -> None:
        """Record how the process ended: finished, cancelled or failed (with a sentence).

        Steps still waiting to be written are dropped, and so are the files of a step whose
        writing was cut short: the folder holds the steps it lists, and no others."""
        self.stop_threads(drop_queued=True)
        self.close_animations()
        state = JobState(state)
        self.manifest["state"] = state
        if message:
            self.manifest["message"] = message
        self.save_manifest()
        if state != JobState.FINISHED:
            self.remove_unlisted()

    def remove_unlisted(self) -> None:
        listed = {self.manifest["start"]}
        for entry in self.steps_written:
            listed |= {entry[key] for key in ("layer", "frame", "thumbnail") if key in entry}
        for name in ("layers", "frames", "thumbs"):
            for path in (self.folder / name).glob("*.png"):
                if f"{name}/{path.name}" not in listed:
                    path.unlink(missing_ok=True)

    def save_manifest(self) -> None:
        save_manifest(self.folder, self.manifest)


class Queued:
    """Calls `work(*item)` for each item put, in order, on a thread of its own, holding
    QUEUED_STEPS items at most (memory stays flat). After a failure, which goes to `failed`,
    the items left are dropped, so that the caller never waits on a full queue."""

    def __init__(self, work: Callable[..., None], name: str, failed=None) -> None:
        self.work, self.failed = work, failed
        self.failure: BaseException | None = None
        self.dropping = threading.Event()
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUED_STEPS)
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.thread.start()

    def put(self, *item: Any) -> None:
        self.queue.put(item)

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.failure is not None or self.dropping.is_set():
                continue
            try:
                self.work(*item)
            except BaseException as error:
                self.failure = error
                if self.failed is not None:
                    self.failed(error)

    def stop(self, drop_queued: bool) -> None:
        """Wait until what was put is done (or, with `drop_queued`, the item being done)."""
        if not self.thread.is_alive():
            return
        if drop_queued:
            self.dropping.set()
        self.queue.put(None)
        self.thread.join()


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

"""The viewer's model: the steps of a process as they are known so far, and its frames on
demand; what threads find is handed to the UI thread by a `Worker`."""

from __future__ import annotations

import io
import queue
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6 import QtCore

from ..png import encode_png, read_png
from ..process import StepLayer, Thumbnail, composite
from ..result import CHECKPOINT_STEPS, Result, load_result

CACHED_FRAMES = 4
KEPT_FRAMES = 16  # at most, made by the walker for a folder that lacks them (PNGs in memory)
POST_MS = 50  # how often what threads found is taken to the window


class Worker(QtCore.QObject):
    """A thread's results, run on the UI thread: the thread `post`s calls, a timer makes them.
    Not Qt's queued signals: PySide6 6.12 miscounts a reference for each signal emitted from a
    Python thread, and the interpreter aborts at exit after a few hundred."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.deliver)
        self.timer.start(POST_MS)

    def post(self, function, *args) -> None:
        self.calls.put((function, args))

    def deliver(self) -> None:
        while True:
            try:
                function, args = self.calls.get_nowait()
            except queue.Empty:
                return
            function(*args)


class Process(QtCore.QObject):
    """The steps of a process as they are known so far, and its frames on demand.

    A thumbnail the folder lacks (one written with `--outputs none`) is None until the walker
    has composited its way there; `thumbnail_ready` says when one comes."""

    changed = QtCore.Signal()
    thumbnail_ready = QtCore.Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.result: Result | None = None
        self.start: np.ndarray | None = None
        self.layers: list[StepLayer] = []
        self.thumbnails: list[np.ndarray | None] = []
        self.total = 0
        self.complete = False
        self.note = ""
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.kept: dict[int, bytes] = {}  # frames the folder lacks, made by the walker
        self.lacking: tuple[list[int], list[int]] | None = None  # thumbnails, frames
        self.walker: Walker | None = None

    @property
    def count(self) -> int:
        return len(self.thumbnails)

    def open_folder(self, folder: Path) -> None:
        result = load_result(folder)
        self.result = result
        self.start = None
        self.total = result.manifest.get("steps_planned", len(result.steps))
        self.thumbnails = [
            read_png(result.folder / entry["thumbnail"]) if "thumbnail" in entry else None
            for entry in result.steps
        ]
        self.complete = result.complete
        if not result.complete:
            self.note = (
                f"This result is not complete ({len(result.steps)} of {self.total} steps, "
                f"{result.state}): it is still being written, or its writer stopped."
            )
        thumbnails = [k for k, picture in enumerate(self.thumbnails, 1) if picture is None]
        count = len(result.steps)
        every = max(CHECKPOINT_STEPS, -(-count // KEPT_FRAMES))
        frames = [k for k in (*range(every, count, every), count) if not result.has_frame(k)]
        self.lacking = (thumbnails, frames) if thumbnails or frames else None
        self.changed.emit()

    def start_walk(self) -> None:
        """Start making what the folder lacks, once: after the first frame is on screen, so
        that the walk does not slow it down."""
        if self.lacking is not None and self.walker is None:
            self.walker = Walker(self, *self.lacking)

    def close(self) -> None:
        """Stop the threads that work for this process."""
        self.lacking = None
        if self.walker is not None:
            self.walker.stop()

    def add_step(self, layer: StepLayer) -> None:
        self.layers.append(layer)
        self.thumbnails.append(layer.thumbnail)
        self.changed.emit()

    def set_thumbnail(self, k: int, picture: np.ndarray) -> None:
        self.thumbnails[k - 1] = picture
        self.thumbnail_ready.emit(k)

    def keep_frame(self, k: int, png: bytes) -> None:
        self.kept[k] = png

    def set_note(self, note: str) -> None:
        self.note = note
        self.changed.emit()

    def start_frame(self) -> np.ndarray | None:
        """Frame 0, read once."""
        if self.start is None and self.result is not None:
            self.start = self.result.start()
        return self.start

    def stage(self, k: int) -> str | None:
        """The stage of the process step k belongs to, when its engine named it."""
        if self.result is not None:
            return self.result.steps[k - 1].get("stage")
        return self.layers[k - 1].stage if k <= len(self.layers) else None

    def layer(self, k: int) -> StepLayer:
        return self.result.layer(k) if self.result is not None else self.layers[k - 1]

    def frame(self, k: int) -> np.ndarray:
        """Frame k: from the cache, or from the nearest frame before it that is cached, kept
        or written (in the folder, or frame 0) and the layers in between."""
        if k in self.cache:
            self.cache.move_to_end(k)
            return self.cache[k]
        base = self.nearest_kept(k)
        before = max((j for j in self.cache if j < k), default=-1)
        if before >= base:
            frame, base = self.cache[before].copy(), before
        else:
            frame = self.kept_frame(base)
        for j in range(base + 1, k + 1):
            composite(frame, self.layer(j))
        self.cache[k] = frame
        while len(self.cache) > CACHED_FRAMES:
            self.cache.popitem(last=False)
        return frame

    def nearest_kept(self, k: int) -> int:
        """The nearest frame at or before k that is written or kept (0 at worst)."""
        if self.result is None:
            return 0
        return next(j for j in range(k, -1, -1) if j in self.kept or self.result.has_frame(j))

    def kept_frame(self, j: int) -> np.ndarray:
        """A new copy of frame j, which is frame 0, kept by the walker or in the folder."""
        if j == 0:
            return self.start_frame().copy()
        if j in self.kept:
            with Image.open(io.BytesIO(self.kept[j])) as image:
                return np.asarray(image).copy()
        return read_png(self.result.folder / self.result.steps[j - 1]["frame"])

    def only_step(self, k: int) -> np.ndarray:
        """Step k's paint alone over a checkerboard, at its place on the canvas."""
        height, width = self.start_frame().shape[:2]
        yy, xx = np.mgrid[:height, :width]
        board = np.where(((yy // 16) + (xx // 16)) % 2 == 0, 255, 204).astype(np.uint8)
        canvas = np.empty((height, width, 4), np.uint8)
        canvas[..., :3] = board[..., None]
        canvas[..., 3] = 255
        composite(canvas, self.layer(k))
        return canvas


class Walker(Worker):
    """Composites a folder's layers once, on a thread of its own, for what the folder lacks:
    the thumbnails (a folder written with `--outputs none`) and frames every few steps (a lean
    one: the server's cache), kept in memory as PNGs, so that the window opens at once and any
    frame is soon a read and a few layers away. It starts from the frame written just before
    the first one it makes."""

    def __init__(self, process: Process, thumbnails: list[int], frames: list[int]) -> None:
        super().__init__()
        self.process, self.result = process, process.result
        self.thumbnails, self.frames = set(thumbnails), set(frames)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="viewer walk", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        wanted = self.thumbnails | self.frames
        first, last = min(wanted), max(wanted)
        try:
            base = next(j for j in range(first - 1, -1, -1) if self.result.has_frame(j))
            frame = self.result.frame(base)
            small = Thumbnail(frame)
            for k in range(base + 1, last + 1):
                if self.stopped.is_set():
                    return
                layer = self.result.layer(k)
                composite(frame, layer)
                right, bottom = layer.x + layer.width, layer.y + layer.height
                picture = small.update(frame, layer.x, layer.y, right, bottom)
                if k in self.thumbnails:
                    self.post(self.process.set_thumbnail, k, picture)
                if k in self.frames:
                    self.post(self.process.keep_frame, k, encode_png(frame))
        except Exception as error:  # a damaged file: the window stays, and says so
            self.post(self.process.set_note, f"Some frames cannot be made: {error}")

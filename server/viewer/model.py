"""The viewer's model: the steps of a process as they are known so far, and its frames on
demand; what threads find is handed to the UI thread by a `Worker`."""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from ..process import StepLayer, Thumbnail, composite
from ..result import Result, load_result, read_png

CACHED_FRAMES = 4
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

    A thumbnail the folder lacks (one written with `--outputs none`) is None until a thread
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
        self.thumbnailer: Thumbnailer | None = None

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
        if any(picture is None for picture in self.thumbnails):
            self.thumbnailer = Thumbnailer(self)
        self.changed.emit()

    def close(self) -> None:
        """Stop the threads that work for this process."""
        if self.thumbnailer is not None:
            self.thumbnailer.stop()

    def add_step(self, layer: StepLayer) -> None:
        self.layers.append(layer)
        self.thumbnails.append(layer.thumbnail)
        self.changed.emit()

    def set_thumbnail(self, k: int, picture: np.ndarray) -> None:
        self.thumbnails[k - 1] = picture
        self.thumbnail_ready.emit(k)

    def set_note(self, note: str) -> None:
        self.note = note
        self.changed.emit()

    def start_frame(self) -> np.ndarray | None:
        """Frame 0, read once."""
        if self.start is None and self.result is not None:
            self.start = self.result.start()
        return self.start

    def layer(self, k: int) -> StepLayer:
        return self.result.layer(k) if self.result is not None else self.layers[k - 1]

    def frame(self, k: int) -> np.ndarray:
        """Frame k: from the cache, from its file, or composited from the nearest frame before."""
        if k in self.cache:
            self.cache.move_to_end(k)
            return self.cache[k]
        frame = None
        before = max((j for j in self.cache if j < k), default=0)
        if self.result is not None:
            # The nearest frame written before k (a folder without frames has one every few
            # steps, and the last), unless one already in the cache is nearer.
            written = next((j for j in range(k, 0, -1) if self.result.has_frame(j)), 0)
            if k == 0 or written > before:
                frame = self.result.frame(k)
        if frame is None:
            frame = (self.cache[before] if before else self.start_frame()).copy()
            for j in range(before + 1, k + 1):
                composite(frame, self.layer(j))
        self.cache[k] = frame
        while len(self.cache) > CACHED_FRAMES:
            self.cache.popitem(last=False)
        return frame

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


class Thumbnailer(Worker):
    """Builds the thumbnails a result folder lacks on a thread of its own, compositing the
    layers once from frame 0 (or from the frame written just before the first one missing),
    so that the window opens at once and the strip fills in as they come."""

    def __init__(self, process: Process) -> None:
        super().__init__()
        self.process, self.result = process, process.result
        self.missing = [k for k, picture in enumerate(process.thumbnails, 1) if picture is None]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="thumbnails", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        first, last = self.missing[0], self.missing[-1]
        wanted = set(self.missing)
        try:
            base = next(j for j in range(first - 1, -1, -1) if self.result.has_frame(j))
            frame = self.result.frame(base)
            small = Thumbnail(frame)
            for k in range(base + 1, last + 1):
                if self.stopped.is_set():
                    return
                layer = self.result.layer(k)
                composite(frame, layer)
                picture = small.update(
                    frame, layer.x, layer.y, layer.x + layer.width, layer.y + layer.height
                )
                if k in wanted:
                    self.post(self.process.set_thumbnail, k, picture)
        except Exception as error:  # a damaged file: the window stays, and says so
            self.post(self.process.set_note, f"Some thumbnails cannot be made: {error}")

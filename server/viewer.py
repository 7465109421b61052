"""`paintstep view`: a window that scrubs through a painting process, without Krita.

Opens a result folder (what `paintstep paint` writes), or follows a job on a server. Frames are
read or composited on demand and only a few are kept, so a 4096 px, 64-step process opens at
once and stays small in memory. PySide6 is the `viewer` extra, imported only here.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .errors import PaintError
from .exports import contact_sheet, export_animation, write_ora
from .process import StepLayer, composite
from .result import Result, load_result

CACHED_FRAMES = 4
POST_MS = 50  # how often what threads found is taken to the window
JOB_LIST_SECONDS = 1.0  # how often a viewer on a server asks for its jobs
Key = QtCore.Qt.Key
WINDOW_KEYS = {
    Key.Key_Left,
    Key.Key_Right,
    Key.Key_Home,
    Key.Key_End,
    Key.Key_Space,
    Key.Key_Plus,
    Key.Key_Equal,
    Key.Key_Minus,
}


class Process(QtCore.QObject):
    """The steps of a process as they are known so far, and its frames on demand."""

    changed = QtCore.Signal()

    def __init__(self) -> None:
        super().__init__()
        self.result: Result | None = None
        self.start: np.ndarray | None = None
        self.layers: list[StepLayer] = []
        self.thumbnails: list[np.ndarray] = []
        self.total = 0
        self.complete = False
        self.note = ""
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def count(self) -> int:
        return len(self.thumbnails)

    def open_folder(self, folder: Path) -> None:
        result = load_result(folder)
        self.result = result
        self.start = None
        self.total = result.manifest.get("steps_planned", len(result.steps))
        self.thumbnails = [result.thumbnail(k) for k in range(1, len(result.steps) + 1)]
        self.complete = result.complete
        if not result.complete:
            self.note = (
                f"This result is not complete ({len(result.steps)} of {self.total} steps, "
                f"{result.state}): it is still being written, or its writer stopped."
            )
        self.changed.emit()

    def add_step(self, layer: StepLayer) -> None:
        self.layers.append(layer)
        self.thumbnails.append(layer.thumbnail)
        self.changed.emit()

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
            # The nearest frame written before k (a lean folder has one every few steps),
            # unless one already in the cache is nearer.
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


def to_pixmap(rgba: np.ndarray) -> QtGui.QPixmap:
    rgba = np.ascontiguousarray(rgba)
    height, width = rgba.shape[:2]
    image = QtGui.QImage(rgba.data, width, height, width * 4, QtGui.QImage.Format.Format_RGBA8888)
    return QtGui.QPixmap.fromImage(image.copy())


class FrameView(QtWidgets.QGraphicsView):
    """The big view: the wheel scrubs, Ctrl+wheel zooms, dragging pans."""

    scrubbed = QtCore.Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QtWidgets.QGraphicsScene(self))
        self.item = self.scene().addPixmap(QtGui.QPixmap())
        self.setDragMode(QtWidgets.QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QtGui.QColor(60, 60, 60))

    def show_pixmap(self, pixmap: QtGui.QPixmap) -> None:
        first = self.item.pixmap().isNull()
        self.item.setPixmap(pixmap)
        self.scene().setSceneRect(QtCore.QRectF(pixmap.rect()))
        if first:
            self.fitInView(self.item, QtCore.Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in WINDOW_KEYS:
            event.ignore()  # a graphics view scrolls with these; they scrub, in the window
        else:
            super().keyPressEvent(event)

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:  # noqa: N802 - Qt's name
        up = event.angleDelta().y() > 0
        if event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.25 if up else 0.8)
        else:
            self.scrubbed.emit(1 if up else -1)


class Viewer(QtWidgets.QMainWindow):
    def __init__(self, process: Process) -> None:
        super().__init__()
        self.process = process
        self.setWindowTitle("Paintstep viewer")
        self.view = FrameView()
        self.view.scrubbed.connect(lambda step: self.go(self.slider.value() + step))
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)  # then it follows the steps, starting on the last
        self.slider.valueChanged.connect(self.show_frame)
        self.position = QtWidgets.QLabel("")
        self.only = QtWidgets.QCheckBox("Only this step")
        self.only.toggled.connect(lambda: self.show_frame(self.slider.value()))
        self.play_button = QtWidgets.QPushButton("Play")
        self.play_button.clicked.connect(self.toggle_play)
        self.speed = QtWidgets.QSpinBox()
        self.speed.setRange(1, 30)
        self.speed.setValue(4)
        self.speed.setSuffix(" steps/s")
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.advance)
        self.strip = QtWidgets.QListWidget()
        self.strip.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.strip.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QtCore.QSize(96, 96))
        self.strip.setFixedHeight(130)
        self.strip.currentRowChanged.connect(lambda row: row >= 0 and self.go(row + 1))

        controls = QtWidgets.QHBoxLayout()
        for widget in (self.play_button, self.speed, self.slider, self.position, self.only):
            controls.addWidget(widget)
        # What the Export menu writes: an animation of frames first..last, a sheet of frames.
        self.first = QtWidgets.QSpinBox()
        self.last = QtWidgets.QSpinBox()
        for box in (self.first, self.last):
            box.setRange(0, 0)  # then "to" follows the steps, as the slider does
        self.sheet_frames = QtWidgets.QLineEdit()
        self.sheet_frames.setPlaceholderText("frames for a contact sheet, e.g. 0, 4, 8, 16")
        exports = QtWidgets.QHBoxLayout()
        exports.addWidget(QtWidgets.QLabel("Export frames"))
        exports.addWidget(self.first)
        exports.addWidget(QtWidgets.QLabel("to"))
        exports.addWidget(self.last)
        exports.addWidget(QtWidgets.QLabel("Sheet"))
        exports.addWidget(self.sheet_frames, 1)
        self.jobs = QtWidgets.QComboBox()  # a server's jobs, when following one
        self.jobs.setVisible(False)
        root = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(root)
        layout.addWidget(self.jobs)
        layout.addWidget(self.message)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        layout.addWidget(self.strip)
        layout.addLayout(exports)
        self.setCentralWidget(root)
        self.build_menu()
        self.resize(1100, 820)
        self.job_list: JobList | None = None  # a server's jobs, asked for again and again
        self.set_process(process)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.job_list is not None:
            self.job_list.stop()
        super().closeEvent(event)

    def set_process(self, process: Process) -> None:
        """Show another process (another job of a server) from its start."""
        if process is not self.process:
            self.process.changed.disconnect(self.refresh)
        self.process = process
        self.strip.clear()
        for widget in (self.slider, self.first, self.last):
            widget.setRange(0, 0)
        process.changed.connect(self.refresh)
        self.refresh()

    def build_menu(self) -> None:
        menu = self.menuBar().addMenu("&Export")
        for title, handler in (
            ("Animation of frames 0..k (GIF or MP4)...", self.ask_animation),
            ("Contact sheet (PNG)...", self.ask_contact_sheet),
            ("Layers for Krita (OpenRaster .ora)...", self.ask_ora),
        ):
            menu.addAction(title, handler)

    # -- showing ------------------------------------------------------------------------------

    def refresh(self) -> None:
        process = self.process
        at_end = self.slider.value() == self.slider.maximum()
        self.strip.blockSignals(True)  # adding thumbnails must not move the slider
        while self.strip.count() < process.count:
            k = self.strip.count() + 1
            item = QtWidgets.QListWidgetItem(str(k))
            item.setIcon(QtGui.QIcon(to_pixmap(process.thumbnails[k - 1])))
            self.strip.addItem(item)
        self.strip.blockSignals(False)
        self.slider.setRange(0, process.count)
        if at_end:
            self.slider.setValue(process.count)
        at_last = self.last.value() == self.last.maximum()
        for box in (self.first, self.last):
            box.setRange(0, process.count)
        if at_last:
            self.last.setValue(process.count)
        if not self.sheet_frames.isModified():
            count = process.count
            chosen = sorted({round(i * count / 11) for i in range(12)}) if count else []
            self.sheet_frames.setText(", ".join(map(str, chosen)))
        self.message.setText(process.note)
        self.message.setVisible(bool(process.note))
        self.show_frame(self.slider.value())

    def show_frame(self, k: int) -> None:
        process = self.process
        if process.result is None and process.start is None:
            return  # nothing to show yet (a server job before its start frame)
        if self.only.isChecked() and k >= 1:
            picture = process.only_step(k)
        else:
            picture = process.frame(k)
        self.view.show_pixmap(to_pixmap(picture))
        total = process.total or process.count
        self.position.setText(f"step {k} / {total}" if k else f"start / {total}")

    def go(self, k: int) -> None:
        self.slider.setValue(max(0, min(k, self.process.count)))

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt's name
        key = event.key()
        moves = {
            QtCore.Qt.Key.Key_Right: self.slider.value() + 1,
            QtCore.Qt.Key.Key_Left: self.slider.value() - 1,
            QtCore.Qt.Key.Key_Home: 0,
            QtCore.Qt.Key.Key_End: self.process.count,
        }
        if key in moves:
            self.go(moves[key])
        elif key == QtCore.Qt.Key.Key_Space:
            self.toggle_play()
        elif key in (QtCore.Qt.Key.Key_Plus, QtCore.Qt.Key.Key_Equal):
            self.view.zoom(1.25)
        elif key == QtCore.Qt.Key.Key_Minus:
            self.view.zoom(0.8)
        else:
            super().keyPressEvent(event)

    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.play_button.setText("Play")
            return
        if self.slider.value() >= self.process.count:
            self.go(0)
        self.timer.start(int(1000 / self.speed.value()))
        self.play_button.setText("Pause")

    def advance(self) -> None:
        if self.slider.value() >= self.process.count:
            self.toggle_play()
        else:
            self.go(self.slider.value() + 1)

    # -- exporting ----------------------------------------------------------------------------

    def need_result(self) -> Result | None:
        if self.process.result is None:
            self.message.setText("Exports work on result folders; open one with paintstep view.")
            self.message.setVisible(True)
        return self.process.result

    def save_path(self, name: str) -> str:
        """Where a save dialog starts: the result folder, where the process's files are."""
        folder = self.process.result.folder if self.process.result is not None else Path.cwd()
        return str(folder / name)

    def ask_animation(self) -> None:
        first, last = self.first.value(), self.last.value()
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self,
            "Export animation",
            self.save_path(f"frames_{first}-{last}.gif"),  # not over the folder's process.gif
            "GIF (*.gif);;MP4 (*.mp4)",
        )
        if path and self.need_result():
            self.run_export(lambda: export_animation(self.process.result, first, last, path))

    def ask_contact_sheet(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export contact sheet", self.save_path("sheet.png"), "PNG (*.png)"
        )
        if path and self.need_result():
            self.run_export(lambda: contact_sheet(self.process.result, self.chosen_frames(), path))

    def chosen_frames(self) -> list[int]:
        """The frames typed for the contact sheet ("0, 4, 8" or "0-16")."""
        chosen = []
        for part in self.sheet_frames.text().replace(" ", "").split(","):
            if not part:
                continue
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise PaintError(f"Write the sheet's frames as 0, 4, 8 or 0-16, not {part!r}.")
            chosen += list(range(int(low), int(high or low) + 1))
        return chosen

    def ask_ora(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export layers", self.save_path("process.ora"), "OpenRaster (*.ora)"
        )
        if path and self.need_result():
            self.run_export(lambda: write_ora(self.process.result, path))

    def run_export(self, export) -> None:
        """Run an export; what it wrote, or why it could not, goes into the message line."""
        try:
            written = export()
        except (PaintError, OSError) as error:
            self.message.setText(f"Could not export: {error}")
        else:
            self.message.setText(f"Wrote {written}")
        self.message.setVisible(True)


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


class Follower(Worker):
    """Fetches a job from a server on a thread of its own; what arrives goes to the Process on
    the UI thread."""

    def __init__(
        self, process: Process, address: str, job: str | None, keys: str | None = None
    ) -> None:
        super().__init__()
        self.process, self.address, self.job, self.keys = process, address, job, keys
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def on_started(self, start: np.ndarray, total: int) -> None:
        self.process.start, self.process.total = start, total

    def run(self) -> None:
        from .client import Accepted, Client, Done, ServerError, ServerLost, Step

        try:
            from .keys import load_client_keys

            keys = load_client_keys(Path(self.keys)) if self.keys else None
            with Client(self.address, keys=keys) as client:
                job = self.job or next(iter(j["job"] for j in client.list_jobs()), None)
                if job is None:
                    self.post(
                        self.process.set_note, f"The server at {self.address} has no jobs yet."
                    )
                    return
                for event in client.fetch(job):
                    if isinstance(event, Accepted):
                        self.post(self.on_started, event.start.array().copy(), event.steps)
                        self.post(
                            self.process.set_note, f"Job {job}: {event.state}, following it live."
                        )
                    elif isinstance(event, Step):
                        self.post(self.process.add_step, event.to_layer())
                    elif isinstance(event, Done):
                        self.post(
                            self.process.set_note, f"Job {job}: {event.steps} steps, {event.state}."
                        )
        except (ServerError, ServerLost, PaintError) as error:
            self.post(self.process.set_note, str(error))
        except Exception as error:  # keep the window alive and say what happened
            self.post(self.process.set_note, f"Cannot follow the job at {self.address}: {error}")


class JobList(Worker):
    """Asks a server for its jobs every JOB_LIST_SECONDS on a thread of its own; each answer
    goes to `listed` on the UI thread, each failure to `failed`."""

    def __init__(self, address: str, keys: str | None, listed, failed) -> None:
        super().__init__()
        self.address, self.keys, self.listed, self.failed = address, keys, listed, failed
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop asking; waits for the thread so that no answer comes to a closed window."""
        self.stopped.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        from .client import Client, ServerError, ServerLost
        from .keys import load_client_keys

        try:
            keys = load_client_keys(Path(self.keys)) if self.keys else None
            with Client(self.address, keys=keys) as client:
                while not self.stopped.wait(JOB_LIST_SECONDS):
                    try:
                        self.post(self.listed, client.list_jobs())
                    except ServerLost as error:  # busy or restarting: ask again later
                        self.post(self.failed, str(error))
        except (ServerError, ServerLost, PaintError) as error:
            if not self.stopped.is_set():
                self.post(self.failed, str(error))


def job_label(entry: dict) -> str:
    label = f"{entry['name'] or entry['job']}: {entry['steps_done']}/{entry['steps']} steps"
    return f"{label} ({entry['state']})"


def follow(address: str, job: str | None = None, keys: str | None = None) -> Viewer:
    """A viewer window on a server's jobs, listed live: the chosen one is followed as it is
    painted (the one named, or else the newest, until another is chosen)."""
    from .client import Client, ServerError, ServerLost
    from .keys import load_client_keys

    window = Viewer(Process())
    jobs: list[dict] = []
    try:
        with Client(address, keys=load_client_keys(Path(keys)) if keys else None) as client:
            jobs = client.list_jobs()
    except (ServerError, ServerLost, PaintError) as error:
        window.process.set_note(str(error))
        return window
    ids: list[str] = []
    followed: dict[str, str | None] = {"job": None, "chosen": job}

    def watch(index: int) -> None:
        if 0 <= index < len(ids) and ids[index] != followed["job"]:
            followed["job"] = ids[index]
            process = Process()
            window.set_process(process)
            window.follower = Follower(process, address, ids[index], keys)

    def choose(index: int) -> None:
        if 0 <= index < len(ids):
            followed["chosen"] = ids[index]
            watch(index)

    def update(listed: list[dict]) -> None:
        """New jobs at the top, every label as the server says now."""
        new = [entry for entry in listed if entry["job"] not in ids]
        window.jobs.blockSignals(True)
        for place, entry in enumerate(new):
            ids.insert(place, entry["job"])
            window.jobs.insertItem(place, job_label(entry))
        wanted = followed["chosen"] if followed["chosen"] in ids else (ids[0] if ids else None)
        for entry in listed:
            window.jobs.setItemText(ids.index(entry["job"]), job_label(entry))
        if wanted is not None:
            window.jobs.setCurrentIndex(ids.index(wanted))
        window.jobs.blockSignals(False)
        window.jobs.setVisible(bool(ids))
        if wanted is not None:
            watch(ids.index(wanted))

    window.jobs.currentIndexChanged.connect(choose)
    update(jobs)
    if not jobs:
        window.process.set_note(f"The server at {address} has no jobs yet.")
    window.job_list = JobList(address, keys, update, lambda note: window.process.set_note(note))
    return window


def open_folder(folder: str | Path) -> Viewer:
    """A viewer window on a result folder; a folder that is not one is said in the window."""
    process = Process()
    try:
        process.open_folder(Path(folder))
    except PaintError as error:
        process.note = f"{error} Open a folder written by `paintstep paint`."
    return Viewer(process)


def check_display() -> None:
    """Refuse with a sentence where Qt would abort: on Linux with no display and no platform."""
    if QtWidgets.QApplication.instance() is not None or os.environ.get("QT_QPA_PLATFORM"):
        return
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise PaintError(
            "The viewer needs a display: run it on a desktop, or give it a virtual one with "
            "QT_QPA_PLATFORM=offscreen or xvfb-run."
        )


def run(
    folder: str | None, server: str | None = None, job: str | None = None, keys: str | None = None
) -> int:
    check_display()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = follow(server, job, keys) if server else open_folder(folder)
    window.show()
    return app.exec()

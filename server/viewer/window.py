"""The viewer's window: the frame, the slider and the strip of thumbnails, playing, keys."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .export_menu import ExportMenu
from .model import Process

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
        self.exports = ExportMenu(self)
        self.jobs = QtWidgets.QComboBox()  # a server's jobs, when following one
        self.jobs.setVisible(False)
        root = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(root)
        layout.addWidget(self.jobs)
        layout.addWidget(self.message)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        layout.addWidget(self.strip)
        layout.addLayout(self.exports.row)
        self.setCentralWidget(root)
        self.resize(1100, 820)
        self.job_list = None  # a server's JobList (follow.py), asked for again and again
        self.set_process(process)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.job_list is not None:
            self.job_list.stop()
        self.process.close()
        super().closeEvent(event)

    def set_process(self, process: Process) -> None:
        """Show another process (another job of a server) from its start."""
        if process is not self.process:
            self.process.changed.disconnect(self.refresh)
            self.process.thumbnail_ready.disconnect(self.show_thumbnail)
            self.process.close()
        self.process = process
        self.strip.clear()
        self.slider.setRange(0, 0)
        self.exports.reset()
        process.changed.connect(self.refresh)
        process.thumbnail_ready.connect(self.show_thumbnail)
        self.refresh()

    def say(self, text: str) -> None:
        """A sentence in the message line: what an export wrote, or why it could not."""
        self.message.setText(text)
        self.message.setVisible(True)

    # -- showing ------------------------------------------------------------------------------

    def refresh(self) -> None:
        process = self.process
        at_end = self.slider.value() == self.slider.maximum()
        self.strip.blockSignals(True)  # adding thumbnails must not move the slider
        while self.strip.count() < process.count:
            self.strip.addItem(QtWidgets.QListWidgetItem(str(self.strip.count() + 1)))
            self.show_thumbnail(self.strip.count())
        self.strip.blockSignals(False)
        self.slider.setRange(0, process.count)
        if at_end:
            self.slider.setValue(process.count)
        self.exports.follow(process.count)
        self.message.setText(process.note)
        self.message.setVisible(bool(process.note))
        self.show_frame(self.slider.value())

    def show_thumbnail(self, k: int) -> None:
        """Step k's icon in the strip, once its thumbnail is known."""
        picture = self.process.thumbnails[k - 1]
        if picture is not None and k <= self.strip.count():
            self.strip.item(k - 1).setIcon(QtGui.QIcon(to_pixmap(picture)))

    def show_frame(self, k: int) -> None:
        process = self.process
        if process.result is None and process.start is None:
            return  # nothing to show yet (a server job before its start frame)
        if self.only.isChecked() and k >= 1:
            picture = process.only_step(k)
        else:
            picture = process.frame(k)
        self.view.show_pixmap(to_pixmap(picture))
        process.start_walk()
        total = process.total or process.count
        stage = process.stage(k) if k else None
        where = f"step {k} / {total}" if k else f"start / {total}"
        self.position.setText(f"{where} ({stage})" if stage else where)

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

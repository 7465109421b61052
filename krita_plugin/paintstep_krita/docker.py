"""The Paintstep docker: generate from the canvas, watch the steps arrive, scrub, apply."""

from __future__ import annotations

import os
import tempfile

from krita import DockWidget, Krita

from . import document
from .connection import Connection
from .qt import QtCore, QtGui, QtWidgets
from .vendor import protocol_module

DEFAULT_ADDRESS = "tcp://127.0.0.1:5571"


def server_address() -> str:
    setting = Krita.instance().readSetting("paintstep", "server", "")
    return os.environ.get("PAINTSTEP_SERVER") or setting or DEFAULT_ADDRESS


def to_qimage(raw) -> QtGui.QImage:
    """A QImage (its own copy) of a RawImage in rgba8."""
    data = bytes(raw.data)
    image = QtGui.QImage(
        data, raw.width, raw.height, raw.width * 4, QtGui.QImage.Format.Format_RGBA8888
    )
    return image.copy()


class PaintstepDocker(DockWidget):
    instances: list = []  # one per Krita window; the self-test finds it here

    def __init__(self) -> None:
        super().__init__()
        PaintstepDocker.instances.append(self)
        self.setWindowTitle("Paintstep")
        self.setObjectName("paintstep_docker")
        self.steps: list = []  # the job's Step events, in order
        self.canvas: document.Canvas | None = None
        self.job = ""
        self.running = False
        self.finished = False
        self.build()
        self.connection = Connection(server_address(), self)
        self.connection.event.connect(self.on_event)
        self.connection.status.connect(self.on_status)
        self.connection.welcomed.connect(self.on_welcome)
        self.connection.connect_server()

    # -- widgets ------------------------------------------------------------------------------

    def build(self) -> None:
        root = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(root)
        self.server_label = QtWidgets.QLabel(f"Server: {server_address()} (connecting)")
        self.server_label.setWordWrap(True)
        layout.addWidget(self.server_label)

        form = QtWidgets.QFormLayout()
        self.engine = QtWidgets.QComboBox()
        self.engine.addItem("strokes")
        form.addRow("Engine", self.engine)
        self.step_count = QtWidgets.QSpinBox()
        self.step_count.setRange(1, 1000)
        self.step_count.setValue(16)
        form.addRow("Steps", self.step_count)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        self.from_selection = QtWidgets.QCheckBox("Only the selection")
        form.addRow("", self.from_selection)
        layout.addLayout(form)

        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.clicked.connect(self.on_generate)
        layout.addWidget(self.generate_button)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        layout.addWidget(self.progress)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

        self.preview = QtWidgets.QLabel()
        self.preview.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(160)
        layout.addWidget(self.preview)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self.show_step)
        layout.addWidget(self.slider)
        self.strip = QtWidgets.QListWidget()
        self.strip.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.strip.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QtCore.QSize(64, 64))
        self.strip.setFixedHeight(96)
        self.strip.currentRowChanged.connect(lambda row: self.slider.setValue(row + 1))
        layout.addWidget(self.strip)

        buttons = QtWidgets.QHBoxLayout()
        self.apply_upto = QtWidgets.QPushButton("Apply 1..k")
        self.apply_upto.clicked.connect(lambda: self.apply_layers(self.slider.value()))
        self.apply_all = QtWidgets.QPushButton("Apply all")
        self.apply_all.clicked.connect(lambda: self.apply_layers(len(self.steps)))
        self.apply_frames = QtWidgets.QPushButton("As frames")
        self.apply_frames.clicked.connect(self.apply_as_frames)
        for button in (self.apply_upto, self.apply_all, self.apply_frames):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.setWidget(root)
        self.update_buttons()

    def update_buttons(self) -> None:
        have = bool(self.steps)
        for button in (self.apply_upto, self.apply_all, self.apply_frames):
            button.setEnabled(have and not self.running)
        self.generate_button.setText("Cancel" if self.running else "Generate")

    # -- Krita --------------------------------------------------------------------------------

    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
        pass

    # -- generating ---------------------------------------------------------------------------

    def on_generate(self) -> None:
        if self.running:
            self.connection.cancel()
            self.message.setText("Cancelling...")
            return
        doc = Krita.instance().activeDocument()
        if doc is None:
            self.message.setText("Open a document first: Paintstep paints from its canvas.")
            return
        try:
            self.canvas = document.read_canvas(doc, self.from_selection.isChecked())
        except document.UnsupportedDocument as error:
            self.message.setText(str(error))
            return
        raw = protocol_module().RawImage(self.canvas.rgba, self.canvas.width, self.canvas.height)
        mask = None
        if self.canvas.mask is not None:
            mask = protocol_module().RawImage(
                self.canvas.mask, self.canvas.width, self.canvas.height, "gray8"
            )
        self.steps, self.job, self.finished = [], "", False
        self.strip.clear()
        self.slider.setRange(0, 0)
        self.progress.setValue(0)
        self.running = True
        self.message.setText("Sent to the server...")
        self.update_buttons()
        self.connection.generate(
            canvas=raw,
            mask=mask,
            steps=self.step_count.value(),
            seed=self.seed.value(),
            engine=self.engine.currentText(),
            name=doc.name() or "untitled",
        )

    def on_event(self, event) -> None:
        kind = type(event).__name__
        if kind == "Accepted":
            self.job = event.job
            where = "painting" if event.position == 0 else f"waiting ({event.position} ahead)"
            self.message.setText(f"Job {event.job[:8]}: {where}")
        elif kind == "Progress":
            self.progress.setValue(int(event.done * 1000))
        elif kind == "Step":
            self.steps.append(event)
            item = QtWidgets.QListWidgetItem(str(event.index))
            item.setIcon(QtGui.QIcon(QtGui.QPixmap.fromImage(to_qimage(event.thumbnail))))
            self.strip.addItem(item)
            follow = self.slider.value() == self.slider.maximum()
            self.slider.setRange(0, len(self.steps))
            if follow:
                self.slider.setValue(len(self.steps))
            self.message.setText(f"Step {event.index} of {event.steps}")
        elif kind == "Done":
            self.running = False
            self.finished = event.state == "finished"
            self.progress.setValue(1000 if self.finished else self.progress.value())
            self.message.setText(f"{len(self.steps)} steps ({event.state}).")
            self.update_buttons()

    def on_status(self, state: str, sentence: str) -> None:
        self.server_label.setText(f"Server: {sentence}")
        if state != "connected" and self.running:
            self.running = False
            self.message.setText(sentence)
            self.update_buttons()

    def on_welcome(self, welcome) -> None:
        names = [engine["name"] for engine in welcome.get("engines", [])]
        if names:
            current = self.engine.currentText()
            self.engine.clear()
            self.engine.addItems(names)
            if current in names:
                self.engine.setCurrentText(current)

    def show_step(self, index: int) -> None:
        if 1 <= index <= len(self.steps):
            image = to_qimage(self.steps[index - 1].thumbnail)
            self.preview.setPixmap(QtGui.QPixmap.fromImage(image))
            self.strip.setCurrentRow(index - 1)

    # -- applying -----------------------------------------------------------------------------

    def step_pixels(self, count: int) -> list:
        return [
            document.StepPixels(
                s.index, s.x, s.y, s.layer.width, s.layer.height, bytes(s.layer.data)
            )
            for s in self.steps[:count]
        ]

    def apply_layers(self, count: int):
        """Steps 1..count as a new group of layers above the current one."""
        doc = Krita.instance().activeDocument()
        if doc is None or not self.steps or count < 1:
            return None
        offset = (self.canvas.x, self.canvas.y) if self.canvas else (0, 0)
        name = f"Paintstep {self.job[:6]} 1-{count}"
        group = document.add_step_layers(doc, self.step_pixels(count), name, offset)
        self.message.setText(f"Added steps 1-{count} as layers in '{name}'.")
        return group

    def apply_as_frames(self):
        """Frames 1..N on frames 1..N of a new animated layer."""
        doc = Krita.instance().activeDocument()
        if doc is None or not self.steps or self.canvas is None:
            return None
        folder = tempfile.mkdtemp(prefix="paintstep-frames-")
        # Without a target the process starts on blank paper, as the server's does: white for
        # an opaque canvas, transparent for one with transparency.
        width, height = self.canvas.width, self.canvas.height
        opaque = self.canvas.rgba[3::4].count(255) == width * height
        start = QtGui.QImage(width, height, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        start.fill(QtGui.QColor(255, 255, 255, 255 if opaque else 0))
        files = []
        for step in self.steps:
            painter = QtGui.QPainter(start)
            painter.drawImage(step.x, step.y, to_qimage(step.layer))
            painter.end()
            path = os.path.join(folder, f"frame_{step.index:04d}.png")
            start.save(path)
            files.append(path)
        layer = document.add_frames(doc, files, 1, f"Paintstep {self.job[:6]} frames")
        self.message.setText(f"Added {len(files)} frames as an animated layer.")
        return layer

"""The Paintstep docker: generate from the canvas, watch the steps arrive, scrub, apply."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from . import document
from .app import DockWidget, active_document, read_setting, when_quitting, write_setting
from .connection import Connection
from .managed import ManagedServer
from .options import OptionsForm
from .qt import QtCore, QtGui, QtWidgets
from .vendor import protocol_module

DEFAULT_ADDRESS = "tcp://127.0.0.1:5571"
PREVIEW_NAME = "Paintstep preview"


def server_address() -> str:
    setting = read_setting("server", "")
    return os.environ.get("PAINTSTEP_SERVER") or setting or DEFAULT_ADDRESS


def keys_folder() -> str:
    """CURVE keys for a server on another machine (see `paintstep keys`), or ""."""
    return os.environ.get("PAINTSTEP_KEYS") or read_setting("keys", "")


class TargetBox(QtWidgets.QComboBox):
    """Where the process should end: nothing (paint the canvas from blank paper), the engine's
    own finish (for engines that invent), a layer of the document, or a picture file. The
    layers are listed afresh each time it opens."""

    NONE, FILE = "None: paint the canvas from blank paper", "A picture file..."
    COMPLETE = "None: let the engine finish the canvas"

    def __init__(self) -> None:
        super().__init__()
        self.layers: list = []
        self.path = ""
        self.invents = False
        self.refresh()

    def set_invents(self, invents: bool) -> None:
        """Offer (or take away) the engine's own finish, for an engine that can invent."""
        if invents != self.invents:
            self.invents = invents
            self.refresh()

    @property
    def first_layer(self) -> int:
        return 2 if self.invents else 1

    def complete(self) -> bool:
        """Whether the engine is to finish the canvas itself (no target)."""
        return self.invents and self.currentIndex() == 1

    def refresh(self) -> None:
        doc = active_document()
        self.layers = document.paint_layers(doc) if doc is not None else []
        current = self.currentText()
        on_file = self.count() > 1 and self.currentIndex() == self.count() - 1
        self.blockSignals(True)
        self.clear()
        self.addItem(self.NONE)
        if self.invents:
            self.addItem(self.COMPLETE)
        self.addItems([f"Layer: {name}" for name, _ in self.layers])
        self.addItem(self.FILE if not self.path else f"File: {os.path.basename(self.path)}")
        # The file entry's text changes once a file is chosen: keep it chosen by place.
        index = self.count() - 1 if on_file else self.findText(current)
        self.setCurrentIndex(max(index, 0))
        self.blockSignals(False)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.refresh()
        super().showPopup()

    def choose_layer(self, name: str) -> None:
        self.refresh()
        self.setCurrentIndex(max(self.findText(f"Layer: {name}"), 0))

    def target(self, canvas: document.Canvas) -> bytes | None:
        """The chosen target in the canvas's box as RGBA, or None for no target."""
        index = self.currentIndex() - self.first_layer
        if index < 0:
            return None
        if index < len(self.layers):
            return document.read_layer(active_document(), self.layers[index][1], canvas)
        if not self.path:
            self.path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Target picture", "", "Pictures (*.png *.jpg *.jpeg *.webp *.tif *.tiff)"
            )
            self.refresh()
        image = QtGui.QImage(self.path)
        if image.isNull():
            raise document.UnsupportedDocument(
                f"Cannot read the picture {self.path}; choose a PNG, JPEG or TIFF file."
            )
        image = image.scaled(
            canvas.width,
            canvas.height,
            QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
            QtCore.Qt.TransformationMode.SmoothTransformation,
        ).convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        return bytes(bits)


def document_key(doc) -> str:
    """What ties a job to its document: the file's path, or its name while it has none."""
    return doc.fileName() or doc.name() or "untitled"


def crop(whole: document.Canvas, box: document.Canvas) -> document.Canvas:
    """The part of the whole canvas's pixels inside box (for an earlier job's frames)."""
    rows = []
    for row in range(box.y, box.y + box.height):
        start = (row * whole.width + box.x) * 4
        rows.append(whole.rgba[start : start + box.width * 4])
    return document.Canvas(box.x, box.y, box.width, box.height, b"".join(rows), None)


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
        self.has_target = False  # frame 0 is the canvas (a target, or the engine finishes it)
        self.engines: dict = {}  # the server's engines by name, from its welcome
        self.preview_layer = None
        self.kept_frames: dict = {}  # frame k -> QImage: a few checkpoints and the last shown
        self.applying = False
        self.build()
        self.managed = ManagedServer()
        self.retries = 0
        when_quitting(self.managed.stop)
        self.earlier: list = []
        self.connection = None
        self.connect_to(server_address(), keys_folder())

    def connect_to(self, address: str, keys: str) -> None:
        """(Re)connect to a server; the old connection's thread ends."""
        if self.connection is not None:
            self.connection.close()
        self.address_edit.setText(address)
        self.keys = keys
        self.retries = 0
        self.connection = Connection(address, keys, self)
        self.connection.event.connect(self.on_event)
        self.connection.status.connect(self.on_status)
        self.connection.welcomed.connect(self.on_welcome)
        self.connection.jobs.connect(self.on_jobs)
        self.connection.connect_server()

    def on_connect_clicked(self) -> None:
        """The address (and keys) typed in the docker: kept in Krita's settings, used now."""
        address = self.address_edit.text().strip()
        write_setting("server", address)
        write_setting("keys", self.keys)
        self.server_label.setText(f"Server: {address} (connecting)")
        self.connect_to(address, self.keys)

    def on_keys_clicked(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Folder with server.key and client.key_secret (from paintstep keys)"
        )
        if folder:
            self.keys = folder
            self.on_connect_clicked()

    # -- widgets ------------------------------------------------------------------------------

    def build(self) -> None:
        root = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(root)
        self.server_label = QtWidgets.QLabel(f"Server: {server_address()} (connecting)")
        self.server_label.setWordWrap(True)
        layout.addWidget(self.server_label)
        address_row = QtWidgets.QHBoxLayout()
        self.address_edit = QtWidgets.QLineEdit(server_address())
        self.address_edit.setToolTip("The Paintstep server, e.g. tcp://127.0.0.1:5571")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.clicked.connect(self.on_connect_clicked)
        self.keys_button = QtWidgets.QPushButton("Keys...")
        self.keys_button.setToolTip("For a server on another machine: the keys folder")
        self.keys_button.clicked.connect(self.on_keys_clicked)
        for widget in (self.address_edit, self.connect_button, self.keys_button):
            address_row.addWidget(widget)
        layout.addLayout(address_row)

        form = QtWidgets.QFormLayout()
        self.engine = QtWidgets.QComboBox()
        self.engine.addItem(read_setting("engine", "strokes"))
        self.engine.currentTextChanged.connect(self.on_engine)
        form.addRow("Engine", self.engine)
        self.target_box = TargetBox()
        form.addRow("Target", self.target_box)
        self.prompt = QtWidgets.QLineEdit(read_setting("prompt", ""))
        self.prompt.setPlaceholderText("What the picture shows (for engines that read it)")
        self.prompt.textChanged.connect(lambda text: write_setting("prompt", text))
        self.prompt.setEnabled(False)
        form.addRow("Prompt", self.prompt)
        self.step_count = QtWidgets.QSpinBox()
        self.step_count.setRange(1, 1000)
        self.step_count.setValue(int(read_setting("steps", "16")))
        self.step_count.valueChanged.connect(lambda value: write_setting("steps", value))
        form.addRow("Steps", self.step_count)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(int(read_setting("seed", "0")))
        self.seed.valueChanged.connect(lambda value: write_setting("seed", value))
        form.addRow("Seed", self.seed)
        self.from_selection = QtWidgets.QCheckBox("Only the selection")
        form.addRow("", self.from_selection)
        self.options_button = QtWidgets.QToolButton()
        self.options_button.setText("Engine options")
        self.options_button.setCheckable(True)
        self.options_button.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.options_button.setArrowType(QtCore.Qt.ArrowType.RightArrow)
        self.options_button.toggled.connect(self.show_options)
        form.addRow("", self.options_button)
        self.options_form = OptionsForm(lambda key: read_setting(key, ""), write_setting)
        self.options_form.setVisible(False)
        form.addRow(self.options_form)

        self.history = QtWidgets.QComboBox()
        self.history.addItem("(none yet)")
        self.history.activated.connect(self.on_history)
        form.addRow("Earlier", self.history)

        self.generate_button = QtWidgets.QPushButton("Generate")
        self.generate_button.clicked.connect(self.on_generate)
        layout.addLayout(form)
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
        self.slider.valueChanged.connect(self.update_preview)
        self.slider.sliderPressed.connect(self.begin_preview)
        self.slider.sliderReleased.connect(self.end_preview)
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
        self.apply_one = QtWidgets.QPushButton("Apply k")
        self.apply_one.clicked.connect(
            lambda: self.apply_layers(self.slider.value(), self.slider.value())
        )
        self.apply_upto = QtWidgets.QPushButton("Apply 1..k")
        self.apply_upto.clicked.connect(lambda: self.apply_layers(1, self.slider.value()))
        self.apply_all = QtWidgets.QPushButton("Apply all")
        self.apply_all.clicked.connect(lambda: self.apply_layers(1, len(self.steps)))
        self.apply_frames = QtWidgets.QPushButton("As frames")
        self.apply_frames.clicked.connect(self.apply_as_frames)
        self.apply_buttons = (self.apply_one, self.apply_upto, self.apply_all, self.apply_frames)
        for button in self.apply_buttons:
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.setWidget(root)
        self.update_buttons()

    def update_buttons(self) -> None:
        have = bool(self.steps)
        for button in self.apply_buttons:
            button.setEnabled(have and not self.running and not self.applying)
        self.generate_button.setText("Cancel" if self.running else "Generate")

    # -- Krita --------------------------------------------------------------------------------

    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
        self.target_box.refresh()
        self.connection.list_jobs()

    # -- generating ---------------------------------------------------------------------------

    def on_generate(self) -> None:
        if self.running:
            self.connection.cancel()
            self.message.setText("Cancelling...")
            return
        doc = active_document()
        if doc is None:
            self.message.setText("Open a document first: Paintstep paints from its canvas.")
            return
        try:
            self.canvas = document.read_canvas(doc, self.from_selection.isChecked())
            target = self.target_box.target(self.canvas)
        except document.UnsupportedDocument as error:
            self.message.setText(str(error))
            return
        raw_image = protocol_module().RawImage
        raw = raw_image(self.canvas.rgba, self.canvas.width, self.canvas.height)
        complete = self.target_box.complete()
        self.has_target = target is not None or complete
        if target is not None:
            target = raw_image(target, self.canvas.width, self.canvas.height)
        mask = None
        if self.canvas.mask is not None:
            mask = raw_image(self.canvas.mask, self.canvas.width, self.canvas.height, "gray8")
        self.steps, self.job, self.finished = [], "", False
        self.kept_frames.clear()
        self.connection.prepared.clear()
        self.strip.clear()
        self.slider.setRange(0, 0)
        self.progress.setValue(0)
        self.running = True
        self.message.setText("Sent to the server...")
        self.update_buttons()
        self.connection.generate(
            canvas=raw,
            target=target,
            mask=mask,
            steps=self.step_count.value(),
            seed=self.seed.value(),
            engine=self.engine.currentText(),
            prompt=self.prompt.text().strip() if self.prompt.isEnabled() else None,
            complete=complete,
            options=self.options_form.chosen(),
            name=doc.name() or "untitled",
            meta={
                "document": document_key(doc),
                "x": self.canvas.x,
                "y": self.canvas.y,
                "target": self.has_target,
            },
        )

    def on_event(self, event) -> None:
        kind = type(event).__name__
        if kind == "Accepted":
            self.job = event.job
            where = "painting" if event.position == 0 else f"waiting ({event.position} ahead)"
            self.message.setText(f"Job {event.job[:8]}: {where}")
        elif kind == "Progress":
            self.progress.setValue(int(event.done * 1000))
            if event.stage not in ("planning", "painting"):
                self.message.setText(f"Job {self.job[:8]}: {event.stage}...")
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
            self.connection.list_jobs()

    def on_status(self, state: str, sentence: str) -> None:
        if state == "offline" and not self.running:
            # None answers: start the one installed here, then try again for a while.
            if not self.managed.running and self.retries == 0:
                sentence = self.managed.start(self.address_edit.text().strip())
            if self.managed.running and self.retries < 10:
                self.retries += 1
                QtCore.QTimer.singleShot(1000, self.connection.connect_server)
        elif state == "connected":
            self.retries = 0
            if self.managed.running:
                sentence += " (started by Paintstep; it stops when Krita quits)"
        if state != "connected" and self.running:
            self.running = False
            self.message.setText(sentence)
            self.update_buttons()
        self.server_label.setText(f"Server: {sentence}")

    def on_jobs(self, jobs) -> None:
        """The server's jobs for this document: results that stay available after a crash."""
        doc = active_document()
        key = document_key(doc) if doc is not None else None
        self.earlier = [job for job in jobs if job.get("meta", {}).get("document") == key]
        self.history.clear()
        if not self.earlier:
            self.history.addItem("(none yet)")
        for job in self.earlier:
            when = time.strftime("%d %b %H:%M", time.localtime(job.get("created", 0)))
            self.history.addItem(f"{when}: {job['steps_done']} steps ({job['state']})")

    def on_history(self, index: int) -> None:
        """Show an earlier result again: its steps are fetched from the server's cache."""
        if self.running or not 0 <= index < len(self.earlier):
            return
        job = self.earlier[index]
        doc = active_document()
        meta = job.get("meta", {})
        self.canvas = document.Canvas(
            meta.get("x", 0), meta.get("y", 0), job["width"], job["height"], b"", None
        )
        if doc is not None:
            whole = document.read_canvas(doc)
            self.canvas = crop(whole, self.canvas)
        self.has_target = bool(meta.get("target"))
        self.steps, self.job, self.finished = [], job["job"], False
        self.kept_frames.clear()
        self.connection.prepared.clear()
        self.strip.clear()
        self.slider.setRange(0, 0)
        self.running = True
        self.update_buttons()
        self.connection.fetch(job["job"])

    def on_welcome(self, welcome) -> None:
        self.connection.list_jobs()
        # Engines the server cannot run (libraries missing there) are not offered.
        self.engines = {
            engine["name"]: engine
            for engine in welcome.get("engines", [])
            if not engine.get("unavailable")
        }
        names = list(self.engines)
        if names:
            current = self.engine.currentText()
            self.engine.clear()
            self.engine.addItems(names)
            if current in names:
                self.engine.setCurrentText(current)
        self.on_engine(self.engine.currentText())

    def on_engine(self, name: str) -> None:
        """The prompt and the engine's own finish are offered where the engine takes them."""
        if not name:
            return
        write_setting("engine", name)
        info = self.engines.get(name, {})
        self.prompt.setEnabled(bool(info.get("prompt")))
        self.target_box.set_invents(bool(info.get("invents")))
        self.options_form.show_engine(name, info.get("options", []))

    def show_options(self, shown: bool) -> None:
        self.options_form.setVisible(shown)
        arrow = QtCore.Qt.ArrowType.DownArrow if shown else QtCore.Qt.ArrowType.RightArrow
        self.options_button.setArrowType(arrow)

    def show_step(self, index: int) -> None:
        if 1 <= index <= len(self.steps):
            image = to_qimage(self.steps[index - 1].thumbnail)
            self.preview.setPixmap(QtGui.QPixmap.fromImage(image))
            self.strip.setCurrentRow(index - 1)

    # -- applying -----------------------------------------------------------------------------

    def step_pixels(self, first: int, last: int) -> list:
        return [
            document.StepPixels(
                s.index,
                s.x,
                s.y,
                s.layer.width,
                s.layer.height,
                bytes(s.layer.data),
                self.connection.prepared.get((s.job, s.index)),
            )
            for s in self.steps[first - 1 : last]
        ]

    def apply_layers(self, first: int, last: int):
        """Steps first..last as a new group of layers above the current one."""
        doc = active_document()
        last = min(last, len(self.steps))
        if doc is None or not self.steps or not 1 <= first <= last:
            return None
        offset = (self.canvas.x, self.canvas.y) if self.canvas else (0, 0)
        which = f"{first}" if first == last else f"{first}-{last}"
        name = f"Paintstep {self.job[:6]} {which}"
        pieces = document.step_layer_pieces(doc, self.step_pixels(first, last), name, offset)
        group = next(pieces)
        self.applying = True
        self.update_buttons()
        self.message.setText(f"Adding step {which} as layers...")

        def more() -> None:
            # A band of rows a turn of Krita's event loop: the UI stays responsive.
            try:
                next(pieces)
            except StopIteration:
                self.applying = False
                self.update_buttons()
                self.message.setText(f"Added step {which} as layers in '{name}'.")
                return
            QtCore.QTimer.singleShot(0, more)

        QtCore.QTimer.singleShot(0, more)
        return group

    def start_frame(self) -> QtGui.QImage:
        """Frame 0. With a target the process starts on the canvas; without one on blank
        paper, as the server's does: white for an opaque canvas, transparent otherwise."""
        width, height = self.canvas.width, self.canvas.height
        if self.has_target:
            return QtGui.QImage(
                self.canvas.rgba, width, height, width * 4, QtGui.QImage.Format.Format_RGBA8888
            ).convertToFormat(QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        opaque = self.canvas.rgba[3::4].count(255) == width * height
        start = QtGui.QImage(width, height, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        start.fill(QtGui.QColor(255, 255, 255, 255 if opaque else 0))
        return start

    def frames(self):
        """Frames 1..N, each composited from the one before (one image, updated in place)."""
        frame = self.start_frame()
        for step in self.steps:
            painter = QtGui.QPainter(frame)
            painter.drawImage(step.x, step.y, to_qimage(step.layer))
            painter.end()
            yield step.index, frame

    def apply_as_frames(self):
        """Frames 1..N on frames 1..N of a new animated layer."""
        doc = active_document()
        if doc is None or not self.steps or self.canvas is None:
            return None
        folder = tempfile.mkdtemp(prefix="paintstep-frames-")
        try:
            files = []
            for index, frame in self.frames():
                # importAnimation puts a file's top-left at the document's: frames are drawn
                # into a document-sized picture at the canvas box's place.
                whole = QtGui.QImage(
                    doc.width(), doc.height(), QtGui.QImage.Format.Format_ARGB32_Premultiplied
                )
                whole.fill(QtGui.QColor(0, 0, 0, 0))
                painter = QtGui.QPainter(whole)
                painter.drawImage(self.canvas.x, self.canvas.y, frame)
                painter.end()
                path = os.path.join(folder, f"frame_{index:04d}.png")
                whole.save(path)
                files.append(path)
            layer = document.add_frames(doc, files, 1, f"Paintstep {self.job[:6]} frames")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.message.setText(f"Added {len(files)} frames as an animated layer.")
        return layer

    # -- previewing on the canvas -------------------------------------------------------------

    def begin_preview(self) -> None:
        """While the slider is held, frame k shows on the canvas at full size in a locked layer
        of its own; the artist's layers stay as they are, and the layer goes away on release,
        so a preview never ends up in a saved file."""
        doc = active_document()
        if doc is None or not self.steps or self.canvas is None or self.preview_layer is not None:
            return
        self.preview_layer = document.add_preview(doc, PREVIEW_NAME)
        self.update_preview(self.slider.value())

    def update_preview(self, index: int) -> None:
        if self.preview_layer is None or not 1 <= index <= len(self.steps):
            return
        image = self.frame_at(index).convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        document.show_preview(
            active_document(),
            self.preview_layer,
            document.StepPixels(index, 0, 0, image.width(), image.height(), bytes(bits)),
            (self.canvas.x, self.canvas.y),
        )

    def frame_at(self, index: int) -> QtGui.QImage:
        """Frame `index`, composited from the nearest kept frame before it rather than from
        frame 0: scrubbing one step on draws one layer, not all of them. Every quarter of
        the process is kept on the way, and the frame last asked for."""
        every = -(-len(self.steps) // 4)  # at most four checkpoints
        start = max((k for k in self.kept_frames if k <= index), default=0)
        if start % every:  # the frame shown last: carried on in place (64 MB at 4096 px)
            frame = self.kept_frames.pop(start)
        elif start:
            frame = self.kept_frames[start].copy()
        else:
            frame = self.start_frame()
        for step in self.steps[start:index]:
            painter = QtGui.QPainter(frame)
            painter.drawImage(step.x, step.y, to_qimage(step.layer))
            painter.end()
            if step.index % every == 0 and step.index not in self.kept_frames:
                self.kept_frames[step.index] = frame.copy()
        last = [k for k in self.kept_frames if k % every]
        for k in last:
            del self.kept_frames[k]  # one frame that is not a checkpoint at most: this one
        if index % every:
            self.kept_frames[index] = frame
        return frame

    def end_preview(self) -> None:
        if self.preview_layer is not None:
            document.remove_preview(active_document(), self.preview_layer)
            self.preview_layer = None

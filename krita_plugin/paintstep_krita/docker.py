"""The Paintstep docker: generate from the canvas, watch the steps arrive, scrub, apply.

It binds widgets to the job's state (job.py) and reads the document for it; what the job does
with the server lives there, the frames in frames.py, applying in applying.py."""

from __future__ import annotations

from . import document
from .app import DockWidget, active_document, read_setting, when_quitting, write_setting
from .applying import Applier
from .frames import to_qimage
from .job import DockerJob, job_box, job_label
from .options import OptionsForm
from .qt import QtCore, QtGui, QtWidgets
from .settings import PluginSettings
from .target import TargetBox

MISSING = (
    "Paintstep's client is missing from the plugin's vendor folder; install the plugin with "
    "`python3 install.py` (or its --zip) from Paintstep's folder."
)


def active_key() -> str | None:
    doc = active_document()
    return document.key(doc) if doc is not None else None


class PaintstepDocker(DockWidget):
    instances: list = []  # one per Krita window; the self-test finds it here

    def __init__(self) -> None:
        super().__init__()
        PaintstepDocker.instances.append(self)
        self.setWindowTitle("Paintstep")
        self.setObjectName("paintstep_docker")
        self.settings = PluginSettings(read_setting, write_setting)
        self.state = DockerJob(document_key=active_key, parent=self)
        self.applier = Applier(self.state)
        self.keys = ""
        try:
            address = self.settings.address
            self.vendored = True
        except ImportError:  # the plugin was copied without what install.py vendors
            address, self.vendored = "", False
        self.build(address)
        self.bind()
        when_quitting(self.state.managed.stop)
        if address:
            self.connect_to(address, self.settings.keys)
        else:
            self.server_label.setText(f"Server: {MISSING}")

    def connect_to(self, address: str, keys: str) -> None:
        self.address_edit.setText(address)
        self.keys = keys
        self.state.connect_to(address, keys)

    def on_connect_clicked(self) -> None:
        """The address (and keys) typed in the docker: kept in Krita's settings, used now."""
        if not self.vendored:
            self.server_label.setText(f"Server: {MISSING}")
            return
        address = self.address_edit.text().strip()
        self.settings.keep_server(address, self.keys)
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

    def build(self, address: str) -> None:
        root = QtWidgets.QWidget(self)
        layout = QtWidgets.QVBoxLayout(root)
        settings = self.settings
        self.server_label = QtWidgets.QLabel(f"Server: {address} (connecting)")
        self.server_label.setWordWrap(True)
        layout.addWidget(self.server_label)
        address_row = QtWidgets.QHBoxLayout()
        self.address_edit = QtWidgets.QLineEdit(address)
        self.address_edit.setToolTip("The Paintstep server, e.g. tcp://127.0.0.1:5571")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.keys_button = QtWidgets.QPushButton("Keys...")
        self.keys_button.setToolTip("For a server on another machine: the keys folder")
        for widget in (self.address_edit, self.connect_button, self.keys_button):
            address_row.addWidget(widget)
        layout.addLayout(address_row)

        form = QtWidgets.QFormLayout()
        self.engine = QtWidgets.QComboBox()
        self.engine.addItem(settings.engine)
        form.addRow("Engine", self.engine)
        self.target_box = TargetBox()
        form.addRow("Target", self.target_box)
        self.prompt = QtWidgets.QLineEdit(settings.prompt)
        self.prompt.setPlaceholderText("What the picture shows (for engines that read it)")
        self.prompt.setEnabled(False)
        form.addRow("Prompt", self.prompt)
        self.step_count = QtWidgets.QSpinBox()
        self.step_count.setRange(1, 1000)
        self.step_count.setValue(settings.steps)
        form.addRow("Steps", self.step_count)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(settings.seed)
        form.addRow("Seed", self.seed)
        self.from_selection = QtWidgets.QCheckBox("Only the selection")
        form.addRow("", self.from_selection)
        self.options_button = QtWidgets.QToolButton()
        self.options_button.setText("Engine options")
        self.options_button.setCheckable(True)
        self.options_button.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.options_button.setArrowType(QtCore.Qt.ArrowType.RightArrow)
        form.addRow("", self.options_button)
        self.options_form = OptionsForm(settings.text, settings.store)
        self.options_form.setVisible(False)
        form.addRow(self.options_form)
        self.history = QtWidgets.QComboBox()
        self.history.addItem("(none yet)")
        form.addRow("Earlier", self.history)
        layout.addLayout(form)

        self.generate_button = QtWidgets.QPushButton("Generate")
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
        layout.addWidget(self.slider)
        self.strip = QtWidgets.QListWidget()
        self.strip.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.strip.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QtCore.QSize(64, 64))
        self.strip.setFixedHeight(96)
        layout.addWidget(self.strip)

        buttons = QtWidgets.QHBoxLayout()
        self.apply_one = QtWidgets.QPushButton("Apply k")
        self.apply_upto = QtWidgets.QPushButton("Apply 1..k")
        self.apply_all = QtWidgets.QPushButton("Apply all")
        self.apply_frames = QtWidgets.QPushButton("As frames")
        self.apply_buttons = (self.apply_one, self.apply_upto, self.apply_all, self.apply_frames)
        for button in self.apply_buttons:
            buttons.addWidget(button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.setWidget(root)
        self.update_buttons()

    def bind(self) -> None:
        """What the widgets do, and what they show of the job's state."""
        settings, state, slider = self.settings, self.state, self.slider
        self.connect_button.clicked.connect(self.on_connect_clicked)
        self.keys_button.clicked.connect(self.on_keys_clicked)
        self.engine.currentTextChanged.connect(self.on_engine)
        self.prompt.textChanged.connect(lambda text: setattr(settings, "prompt", text))
        self.step_count.valueChanged.connect(lambda value: setattr(settings, "steps", value))
        self.seed.valueChanged.connect(lambda value: setattr(settings, "seed", value))
        self.options_button.toggled.connect(self.show_options)
        self.history.activated.connect(self.on_history)
        self.generate_button.clicked.connect(self.on_generate)
        slider.valueChanged.connect(self.show_step)
        slider.valueChanged.connect(self.applier.update_preview)
        slider.sliderPressed.connect(lambda: self.applier.begin_preview(slider.value()))
        slider.sliderReleased.connect(self.applier.end_preview)
        self.strip.currentRowChanged.connect(lambda row: slider.setValue(row + 1))
        self.apply_one.clicked.connect(lambda: self.apply_layers(slider.value(), slider.value()))
        self.apply_upto.clicked.connect(lambda: self.apply_layers(1, slider.value()))
        self.apply_all.clicked.connect(lambda: self.apply_layers(1, len(state.steps)))
        self.apply_frames.clicked.connect(self.apply_as_frames)
        state.changed.connect(self.update_buttons)
        state.cleared.connect(self.on_cleared)
        state.step_added.connect(self.on_step)
        state.progressed.connect(lambda done: self.progress.setValue(int(done * 1000)))
        state.said.connect(self.message.setText)
        state.server_said.connect(lambda sentence: self.server_label.setText(f"Server: {sentence}"))
        state.engines_changed.connect(self.on_engines)
        state.earlier_changed.connect(self.on_earlier)

    def update_buttons(self) -> None:
        state = self.state
        for button in self.apply_buttons:
            button.setEnabled(bool(state.steps) and not state.running and not state.applying)
        self.generate_button.setText("Cancel" if state.running else "Generate")

    # -- Krita --------------------------------------------------------------------------------

    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
        self.target_box.refresh()
        self.state.list_jobs()

    # -- what the artist asks -----------------------------------------------------------------

    def on_generate(self) -> None:
        if self.state.running:
            self.state.cancel()
            return
        doc = active_document()
        if doc is None:
            self.message.setText("Open a document first: Paintstep paints from its canvas.")
            return
        if self.state.connection is None:
            self.message.setText(MISSING)
            return
        try:
            canvas = document.read_canvas(doc, self.from_selection.isChecked())
            target = self.target_box.target(canvas)
        except document.UnsupportedDocument as error:
            self.message.setText(str(error))
            return
        self.state.generate(
            canvas,
            target,
            complete=self.target_box.complete(),
            document=document.key(doc),
            steps=self.step_count.value(),
            seed=self.seed.value(),
            engine=self.engine.currentText(),
            prompt=self.prompt.text().strip() if self.prompt.isEnabled() else None,
            options=self.options_form.chosen(),
            name=document.title(doc),
        )

    def on_history(self, index: int) -> None:
        """Show an earlier result again: its steps are fetched from the server's cache."""
        earlier = self.state.earlier
        if self.state.running or not 0 <= index < len(earlier):
            return
        box = job_box(earlier[index])
        doc = active_document()
        if doc is not None:
            canvas = document.read_canvas(doc, box=box)
        else:
            canvas = document.Canvas(*box, b"", None)
        self.state.fetch(earlier[index], canvas)

    def on_engine(self, name: str) -> None:
        """The prompt and the engine's own finish are offered where the engine takes them."""
        if not name:
            return
        self.settings.engine = name
        info = self.state.engines.get(name, {})
        self.prompt.setEnabled(bool(info.get("prompt")))
        self.target_box.set_invents(bool(info.get("invents")))
        self.options_form.show_engine(name, info.get("options", []))

    def show_options(self, shown: bool) -> None:
        self.options_form.setVisible(shown)
        arrow = QtCore.Qt.ArrowType.DownArrow if shown else QtCore.Qt.ArrowType.RightArrow
        self.options_button.setArrowType(arrow)

    def show_step(self, index: int) -> None:
        steps = self.state.steps
        if 1 <= index <= len(steps):
            image = to_qimage(steps[index - 1].thumbnail)
            self.preview.setPixmap(QtGui.QPixmap.fromImage(image))
            self.strip.setCurrentRow(index - 1)

    def apply_layers(self, first: int, last: int):
        """Steps first..last as a new group of layers above the current one."""
        return self.applier.layers(first, last)

    def apply_as_frames(self):
        """Frames 1..N on frames 1..N of a new animated layer."""
        return self.applier.frames()

    # -- what the job's state says ------------------------------------------------------------

    def on_cleared(self) -> None:
        self.strip.clear()
        self.slider.setRange(0, 0)

    def on_step(self, step) -> None:
        stage = getattr(step, "stage", None)  # the part of the process, where it is named
        item = QtWidgets.QListWidgetItem(f"{step.index} {stage}" if stage else str(step.index))
        item.setIcon(QtGui.QIcon(QtGui.QPixmap.fromImage(to_qimage(step.thumbnail))))
        self.strip.addItem(item)
        follow = self.slider.value() == self.slider.maximum()
        self.slider.setRange(0, len(self.state.steps))
        if follow:
            self.slider.setValue(len(self.state.steps))

    def on_engines(self, engines: dict) -> None:
        names = list(engines)
        if names:
            current = self.engine.currentText()
            self.engine.clear()
            self.engine.addItems(names)
            if current in names:
                self.engine.setCurrentText(current)
        self.on_engine(self.engine.currentText())

    def on_earlier(self, earlier: list) -> None:
        self.history.clear()
        if not earlier:
            self.history.addItem("(none yet)")
        for job in earlier:
            self.history.addItem(job_label(job))

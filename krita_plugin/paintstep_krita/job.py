"""The docker's job, apart from its widgets: the steps so far, whether a job runs or is being
applied, the document's earlier jobs, the server's engines, and the link to the server (with
starting a managed server and retrying while it comes up). It tells the docker what changed
through Qt signals; no widgets and no Krita here (the docker reads the document)."""

from __future__ import annotations

import time
from collections.abc import Callable

from .connection import Connection
from .document import Canvas, StepPixels
from .frames import Frames
from .managed import ManagedServer
from .qt import QtCore, Signal
from .vendor import client_module, protocol_module

RETRIES = 10  # tries to reach a managed server while it starts, a second apart
RETRY_MS = 1000


def job_label(job: dict) -> str:
    """An earlier job as the docker lists it."""
    when = time.strftime("%d %b %H:%M", time.localtime(job.get("created", 0)))
    return f"{when}: {job['steps_done']} steps ({job['state']})"


def job_box(job: dict) -> tuple[int, int, int, int]:
    """Where on the document an earlier job's canvas lay: x, y, width, height."""
    meta = job.get("meta", {})
    return meta.get("x", 0), meta.get("y", 0), job["width"], job["height"]


def later(call: Callable[[], None]) -> None:
    QtCore.QTimer.singleShot(RETRY_MS, call)


class DockerJob(QtCore.QObject):
    """`new_connection(address, keys, parent)` makes the link to a server (a Connection); `managed`
    starts one on this machine; `document_key()` names the active document, or None."""

    changed = Signal()  # running, applying or the steps changed: what the buttons offer
    cleared = Signal()  # a new job's steps begin: none yet
    step_added = Signal(object)  # the client's Step event
    progressed = Signal(float)  # 0..1
    said = Signal(str)  # how the job goes, in a sentence
    server_said = Signal(str)  # how the link to the server goes, in a sentence
    engines_changed = Signal(object)  # the server's engines by name
    earlier_changed = Signal(object)  # the document's earlier jobs, newest first

    def __init__(
        self,
        new_connection: Callable = Connection,
        managed: ManagedServer | None = None,
        document_key: Callable[[], str | None] = lambda: None,
        retry: Callable[[Callable[[], None]], None] = later,
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.new_connection, self.document_key = new_connection, document_key
        self.retry = retry
        self.managed = managed or ManagedServer()
        self.connection = None
        self.address, self.keys = "", ""
        self.retries = 0
        self.steps: list = []  # the job's Step events, in order
        self.canvas: Canvas | None = None
        self.job = ""
        self.running = False
        self.finished = False
        self.applying = False
        self.has_target = False  # frame 0 is the canvas (a target, or the engine finishes it)
        self.frames = Frames(None, False, self.steps)
        self.engines: dict = {}  # the server's engines by name, from its welcome
        self.earlier: list = []
        self.handlers: dict = {}  # the client's event types -> what to do, once one arrives

    # -- the server ---------------------------------------------------------------------------

    def connect_to(self, address: str, keys: str) -> None:
        """(Re)connect to a server; the old connection's thread ends."""
        if self.connection is not None:
            self.connection.close()
        self.address, self.keys = address, keys
        self.retries = 0
        self.connection = self.new_connection(address, keys, self)
        self.connection.event.connect(self.on_event)
        self.connection.status.connect(self.on_status)
        self.connection.welcomed.connect(self.on_welcome)
        self.connection.jobs.connect(self.on_jobs)
        self.connection.connect_server()

    def on_status(self, state: str, sentence: str) -> None:
        if state == "offline" and not self.running:
            # None answers: start the one installed here, then try again for a while.
            if not self.managed.running and self.retries == 0:
                sentence = self.managed.start(self.address)
            if self.managed.running and self.retries < RETRIES:
                self.retries += 1
                self.retry(self.connection.connect_server)
        elif state == "connected":
            self.retries = 0
            if self.managed.running:
                sentence += " (started by Paintstep; it stops when Krita quits)"
        if state != "connected" and self.running:
            self.running = False
            self.said.emit(sentence)
            self.changed.emit()
        self.server_said.emit(sentence)

    def on_welcome(self, welcome: dict) -> None:
        self.connection.list_jobs()
        # Engines the server cannot run (libraries missing there) are not offered.
        self.engines = {
            engine["name"]: engine
            for engine in welcome.get("engines", [])
            if not engine.get("unavailable")
        }
        self.engines_changed.emit(self.engines)

    def on_jobs(self, jobs: list) -> None:
        """The server's jobs for this document: results that stay available after a crash."""
        key = self.document_key()
        self.earlier = [job for job in jobs if job.get("meta", {}).get("document") == key]
        self.earlier_changed.emit(self.earlier)

    def list_jobs(self) -> None:
        if self.connection is not None:
            self.connection.list_jobs()

    # -- a job --------------------------------------------------------------------------------

    def begin(self, canvas: Canvas, has_target: bool, job: str = "") -> None:
        """A new job's steps from `canvas` begin: none yet."""
        self.canvas, self.has_target = canvas, has_target
        self.steps, self.job, self.finished = [], job, False
        self.frames = Frames(canvas, has_target, self.steps)
        self.connection.prepared.clear()
        self.running = True
        self.cleared.emit()
        self.changed.emit()

    def generate(
        self,
        canvas: Canvas,
        target: bytes | None,
        *,
        complete: bool,
        document: str,
        **job,
    ) -> None:
        """Paint from `canvas` towards `target` (straight RGBA in the canvas's box, or None);
        `document` ties the job to its document, `job` is the client's generate()'s rest."""
        raw_image = protocol_module().RawImage
        width, height = canvas.width, canvas.height
        self.begin(canvas, target is not None or complete)
        self.progressed.emit(0.0)
        self.said.emit("Sent to the server...")
        mask = None if canvas.mask is None else raw_image(canvas.mask, width, height, "gray8")
        self.connection.generate(
            canvas=raw_image(canvas.rgba, width, height),
            target=None if target is None else raw_image(target, width, height),
            mask=mask,
            complete=complete,
            meta={"document": document, "x": canvas.x, "y": canvas.y, "target": self.has_target},
            **job,
        )

    def fetch(self, job: dict, canvas: Canvas) -> None:
        """Show an earlier job again (`canvas`: the document's pixels in its box): its steps
        come from the server's cache."""
        self.begin(canvas, bool(job.get("meta", {}).get("target")), job["job"])
        self.connection.fetch(job["job"])

    def cancel(self) -> None:
        self.connection.cancel()
        self.said.emit("Cancelling...")

    def on_event(self, event) -> None:
        if not self.handlers:
            api = client_module()
            self.handlers = {
                api.Accepted: self.on_accepted,
                api.Progress: self.on_progress,
                api.Step: self.on_step,
                api.Done: self.on_done,
            }
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def on_accepted(self, event) -> None:
        self.job = event.job
        where = "painting" if event.position == 0 else f"waiting ({event.position} ahead)"
        self.said.emit(f"Job {event.job[:8]}: {where}")

    def on_progress(self, event) -> None:
        self.progressed.emit(event.done)
        if event.stage not in ("planning", "painting"):
            self.said.emit(f"Job {self.job[:8]}: {event.stage}...")

    def on_step(self, event) -> None:
        self.steps.append(event)
        self.step_added.emit(event)
        self.said.emit(f"Step {event.index} of {event.steps}")

    def on_done(self, event) -> None:
        self.running = False
        self.finished = event.state == "finished"
        if self.finished:
            self.progressed.emit(1.0)
        self.said.emit(f"{len(self.steps)} steps ({event.state}).")
        self.changed.emit()
        self.connection.list_jobs()

    # -- applying -----------------------------------------------------------------------------

    def set_applying(self, applying: bool) -> None:
        self.applying = applying
        self.changed.emit()

    def step_pixels(self, first: int, last: int) -> list[StepPixels]:
        """Steps first..last as the document takes them (Krita's byte order, where the
        connection worked it out already), with their stages."""
        prepared = self.connection.prepared
        return [
            StepPixels(
                s.index,
                s.x,
                s.y,
                s.layer.width,
                s.layer.height,
                bytes(s.layer.data),
                prepared.get((s.job, s.index)),
                getattr(s, "stage", None),  # None from servers and engines that name none
            )
            for s in self.steps[first - 1 : last]
        ]

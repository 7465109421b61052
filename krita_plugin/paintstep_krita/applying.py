"""Putting a job's steps into the active document: as a group of layers, as the frames of an
animated layer, and as a preview of frame k while the slider is held."""

from __future__ import annotations

import shutil
import tempfile

from . import document
from .app import active_document
from .frames import rgba_bytes
from .job import DockerJob
from .qt import QtCore

PREVIEW_NAME = "Paintstep preview"


class Applier:
    def __init__(self, state: DockerJob) -> None:
        self.state = state
        self.preview_layer = None

    def offset(self) -> tuple[int, int]:
        canvas = self.state.canvas
        return (canvas.x, canvas.y) if canvas else (0, 0)

    def layers(self, first: int, last: int):
        """Steps first..last as a new group of layers above the current one, a band of rows
        a turn of Krita's event loop (the UI stays responsive); the group."""
        state, doc = self.state, active_document()
        last = min(last, len(state.steps))
        if doc is None or not state.steps or not 1 <= first <= last:
            return None
        which = f"{first}" if first == last else f"{first}-{last}"
        name = f"Paintstep {state.job[:6]} {which}"
        steps = state.step_pixels(first, last)
        pieces = document.step_layer_pieces(doc, steps, name, self.offset())
        group = next(pieces)
        state.set_applying(True)
        state.said.emit(f"Adding step {which} as layers...")

        def more() -> None:
            try:
                next(pieces)
            except StopIteration:
                state.set_applying(False)
                state.said.emit(f"Added step {which} as layers in '{name}'.")
                return
            QtCore.QTimer.singleShot(0, more)

        QtCore.QTimer.singleShot(0, more)
        return group

    def frames(self):
        """Frames 1..N on frames 1..N of a new animated layer; the layer."""
        state, doc = self.state, active_document()
        if doc is None or not state.steps or state.canvas is None:
            return None
        folder = tempfile.mkdtemp(prefix="paintstep-frames-")
        try:
            files = state.frames.write(folder, document.size(doc))
            layer = document.add_frames(doc, files, 1, f"Paintstep {state.job[:6]} frames")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        state.said.emit(f"Added {len(files)} frames as an animated layer.")
        return layer

    # -- previewing on the canvas -------------------------------------------------------------

    def begin_preview(self, index: int) -> None:
        """While the slider is held, frame k shows on the canvas at full size in a locked layer
        of its own; the artist's layers stay as they are, and the layer goes away on release,
        so a preview never ends up in a saved file."""
        state, doc = self.state, active_document()
        if doc is None or not state.steps or state.canvas is None:
            return
        if self.preview_layer is None:
            self.preview_layer = document.add_preview(doc, PREVIEW_NAME)
            self.update_preview(index)

    def update_preview(self, index: int) -> None:
        if self.preview_layer is None or not 1 <= index <= len(self.state.steps):
            return
        frame = self.state.frames.at(index)
        pixels = document.StepPixels(index, 0, 0, frame.width(), frame.height(), rgba_bytes(frame))
        document.show_preview(active_document(), self.preview_layer, pixels, self.offset())

    def end_preview(self) -> None:
        if self.preview_layer is not None:
            document.remove_preview(active_document(), self.preview_layer)
            self.preview_layer = None

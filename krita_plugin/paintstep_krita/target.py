"""The docker's choice of where the process should end: its target."""

from __future__ import annotations

import os

from . import document
from .app import active_document
from .frames import rgba_bytes
from .qt import QtCore, QtGui, QtWidgets


def read_picture(path: str, width: int, height: int) -> bytes:
    """A picture file scaled to width x height, as straight RGBA."""
    image = QtGui.QImage(path)
    if image.isNull():
        raise document.UnsupportedDocument(
            f"Cannot read the picture {path}; choose a PNG, JPEG or TIFF file."
        )
    return rgba_bytes(
        image.scaled(
            width,
            height,
            QtCore.Qt.AspectRatioMode.IgnoreAspectRatio,
            QtCore.Qt.TransformationMode.SmoothTransformation,
        )
    )


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
        return read_picture(self.path, canvas.width, canvas.height)

"""A job's frames as Qt images: frame 0, frame k composited from the steps, and a few frames
kept on the way so that scrubbing draws one layer, not all of them. Qt only: no Krita here."""

from __future__ import annotations

import os
from collections.abc import Iterator

from .document import Canvas
from .qt import QtGui

PREMULTIPLIED = QtGui.QImage.Format.Format_ARGB32_Premultiplied
RGBA = QtGui.QImage.Format.Format_RGBA8888


def to_qimage(raw) -> QtGui.QImage:
    """A QImage (its own copy) of a RawImage in rgba8."""
    data = bytes(raw.data)
    return QtGui.QImage(data, raw.width, raw.height, raw.width * 4, RGBA).copy()


def rgba_bytes(image: QtGui.QImage) -> bytes:
    """An image's pixels as straight RGBA, row after row."""
    image = image.convertToFormat(RGBA)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    return bytes(bits)


def start_frame(canvas: Canvas, has_target: bool) -> QtGui.QImage:
    """Frame 0. With a target the process starts on the canvas; without one on blank paper,
    as the server's does: white for an opaque canvas, transparent otherwise."""
    width, height = canvas.width, canvas.height
    if has_target:
        return QtGui.QImage(canvas.rgba, width, height, width * 4, RGBA).convertToFormat(
            PREMULTIPLIED
        )
    opaque = canvas.rgba[3::4].count(255) == width * height
    start = QtGui.QImage(width, height, PREMULTIPLIED)
    start.fill(QtGui.QColor(255, 255, 255, 255 if opaque else 0))
    return start


def paint_over(frame: QtGui.QImage, step) -> None:
    painter = QtGui.QPainter(frame)
    painter.drawImage(step.x, step.y, to_qimage(step.layer))
    painter.end()


class Frames:
    """The frames of `steps` (the job's Step events, a list that grows as they arrive) from
    `canvas`; `kept` holds frame k -> QImage: a few checkpoints and the frame last asked for."""

    def __init__(self, canvas: Canvas | None, has_target: bool, steps: list) -> None:
        self.canvas, self.has_target, self.steps = canvas, has_target, steps
        self.kept: dict[int, QtGui.QImage] = {}

    def start(self) -> QtGui.QImage:
        return start_frame(self.canvas, self.has_target)

    def all(self) -> Iterator[tuple[int, QtGui.QImage]]:
        """Frames 1..N, each composited from the one before (one image, updated in place)."""
        frame = self.start()
        for step in self.steps:
            paint_over(frame, step)
            yield step.index, frame

    def at(self, index: int) -> QtGui.QImage:
        """Frame `index`, composited from the nearest kept frame before it rather than from
        frame 0. Every quarter of the process is kept on the way, and the frame last asked for."""
        every = -(-len(self.steps) // 4)  # at most four checkpoints
        start = max((k for k in self.kept if k <= index), default=0)
        if start % every:  # the frame shown last: carried on in place (64 MB at 4096 px)
            frame = self.kept.pop(start)
        elif start:
            frame = self.kept[start].copy()
        else:
            frame = self.start()
        for step in self.steps[start:index]:
            paint_over(frame, step)
            if step.index % every == 0 and step.index not in self.kept:
                self.kept[step.index] = frame.copy()
        for k in [k for k in self.kept if k % every]:
            del self.kept[k]  # one frame that is not a checkpoint at most: this one
        if index % every:
            self.kept[index] = frame
        return frame

    def write(self, folder: str, size: tuple[int, int]) -> list[str]:
        """Frames 1..N as PNG files the size of the document, each at the canvas's place
        (importAnimation puts a file's top-left at the document's); their paths."""
        files = []
        for index, frame in self.all():
            whole = QtGui.QImage(size[0], size[1], PREMULTIPLIED)
            whole.fill(QtGui.QColor(0, 0, 0, 0))
            painter = QtGui.QPainter(whole)
            painter.drawImage(self.canvas.x, self.canvas.y, frame)
            painter.end()
            path = os.path.join(folder, f"frame_{index:04d}.png")
            whole.save(path)
            files.append(path)
        return files

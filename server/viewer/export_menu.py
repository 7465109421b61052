"""The viewer's Export menu and the row of fields that say what it exports: an animation of
frames first..last (GIF or MP4), a contact sheet of chosen frames, the layers for Krita."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6 import QtWidgets

from ..exports import contact_sheet, export_animation, write_ora
from ..result import Result
from ..wire.errors import PaintError


class ExportMenu:
    """The menu on `window` (a Viewer: its `process`, and `say` for the message line)."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:
        self.window = window
        self.first = QtWidgets.QSpinBox()
        self.last = QtWidgets.QSpinBox()
        self.sheet_frames = QtWidgets.QLineEdit()
        self.sheet_frames.setPlaceholderText("frames for a contact sheet, e.g. 0, 4, 8, 16")
        self.row = QtWidgets.QHBoxLayout()
        self.row.addWidget(QtWidgets.QLabel("Export frames"))
        self.row.addWidget(self.first)
        self.row.addWidget(QtWidgets.QLabel("to"))
        self.row.addWidget(self.last)
        self.row.addWidget(QtWidgets.QLabel("Sheet"))
        self.row.addWidget(self.sheet_frames, 1)
        self.reset()
        menu = window.menuBar().addMenu("&Export")
        for title, handler in (
            ("Animation of frames 0..k (GIF or MP4)...", self.ask_animation),
            ("Contact sheet (PNG)...", self.ask_contact_sheet),
            ("Layers for Krita (OpenRaster .ora)...", self.ask_ora),
        ):
            menu.addAction(title, handler)

    @property
    def result(self) -> Result | None:
        return self.window.process.result

    def reset(self) -> None:
        for box in (self.first, self.last):
            box.setRange(0, 0)  # then "to" follows the steps, as the slider does

    def follow(self, count: int) -> None:
        """The steps known are now `count`: "to" stays on the last, the sheet spans them all
        until it is typed in."""
        at_last = self.last.value() == self.last.maximum()
        for box in (self.first, self.last):
            box.setRange(0, count)
        if at_last:
            self.last.setValue(count)
        if not self.sheet_frames.isModified():
            chosen = sorted({round(i * count / 11) for i in range(12)}) if count else []
            self.sheet_frames.setText(", ".join(map(str, chosen)))

    def need_result(self) -> Result | None:
        if self.result is None:
            self.window.say("Exports work on result folders; open one with paintstep view.")
        return self.result

    def save_path(self, name: str) -> str:
        """Where a save dialog starts: the result folder, where the process's files are."""
        folder = self.result.folder if self.result is not None else Path.cwd()
        return str(folder / name)

    def ask_animation(self) -> None:
        first, last = self.first.value(), self.last.value()
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self.window,
            "Export animation",
            self.save_path(f"frames_{first}-{last}.gif"),  # not over the folder's process.gif
            "GIF (*.gif);;MP4 (*.mp4)",
        )
        if path and self.need_result():
            self.run_export(lambda: export_animation(self.result, first, last, path))

    def ask_contact_sheet(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self.window, "Export contact sheet", self.save_path("sheet.png"), "PNG (*.png)"
        )
        if path and self.need_result():
            self.run_export(lambda: contact_sheet(self.result, self.chosen_frames(), path))

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
            self.window, "Export layers", self.save_path("process.ora"), "OpenRaster (*.ora)"
        )
        if path and self.need_result():
            self.run_export(lambda: write_ora(self.result, path))

    def run_export(self, export: Callable[[], object]) -> None:
        """Run an export; what it wrote, or why it could not, goes into the message line."""
        try:
            written = export()
        except (PaintError, OSError) as error:
            self.window.say(f"Could not export: {error}")
        else:
            self.window.say(f"Wrote {written}")

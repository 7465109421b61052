"""`paintstep view`: a window that scrubs through a painting process, without Krita.

Opens a result folder (what `paintstep paint` writes), or follows a job on a server. Frames are
read or composited on demand and only a few are kept, so a 4096 px, 64-step process opens at
once and stays small in memory; thumbnails a folder lacks are built on a thread. PySide6 is
the `viewer` extra, imported only here.

    model.py        Process: the steps known so far and frames on demand; the threads' Worker
    window.py       Viewer: the frame, slider, strip, playing and keys
    export_menu.py  the Export menu and the fields that say what it exports
    follow.py       a server's jobs listed live, one followed as it is painted
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6 import QtWidgets

from ..wire.errors import PaintError
from .follow import follow
from .model import CACHED_FRAMES, Process
from .window import Viewer

__all__ = ["CACHED_FRAMES", "Process", "Viewer", "follow", "open_folder", "run"]


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

"""The Qt binding Krita runs: PyQt5 in Krita 5, PyQt6 in Krita 6, from one codebase.

Krita 6 blocks importing the wrong binding, so the choice follows the Qt version Krita reports
(`pykrita.qt_major_version()`, which Krita 5.1 does not have: that means Qt 5), never which
import happens to work.
"""

from __future__ import annotations

import importlib


def qt_major_version() -> int:
    try:
        pykrita = importlib.import_module("pykrita")
    except ImportError:
        return 5
    report = getattr(pykrita, "qt_major_version", None)
    return int(report()) if callable(report) else 5


QT_MAJOR = qt_major_version()
_binding = "PyQt6" if QT_MAJOR >= 6 else "PyQt5"
QtCore = importlib.import_module(f"{_binding}.QtCore")
QtGui = importlib.import_module(f"{_binding}.QtGui")
QtWidgets = importlib.import_module(f"{_binding}.QtWidgets")
Signal = QtCore.pyqtSignal

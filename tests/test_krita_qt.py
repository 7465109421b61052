"""The plugin's Qt shim picks the binding Krita reports, with fake Krita and Qt modules."""

import importlib
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "krita_plugin"))


def fake_binding(monkeypatch, name):
    package = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, package)
    for part in ("QtCore", "QtGui", "QtWidgets"):
        module = types.ModuleType(f"{name}.{part}")
        module.binding = name
        if part == "QtCore":
            module.pyqtSignal = object()
        monkeypatch.setitem(sys.modules, f"{name}.{part}", module)


@pytest.mark.parametrize(
    "reported, expected", [(None, "PyQt5"), (5, "PyQt5"), (6, "PyQt6"), ("no function", "PyQt5")]
)
def test_the_binding_follows_the_qt_version_krita_reports(monkeypatch, reported, expected):
    fake_binding(monkeypatch, "PyQt5")
    fake_binding(monkeypatch, "PyQt6")  # both importable: only Krita's report decides
    if reported is None:
        monkeypatch.setitem(sys.modules, "pykrita", None)  # Krita 5.1: no pykrita module
    else:
        pykrita = types.ModuleType("pykrita")
        if isinstance(reported, int):
            pykrita.qt_major_version = lambda: reported
        monkeypatch.setitem(sys.modules, "pykrita", pykrita)
    monkeypatch.delitem(sys.modules, "paintstep_krita.qt", raising=False)
    qt = importlib.import_module("paintstep_krita.qt")
    assert qt.QtWidgets.binding == expected
    assert qt.Signal is sys.modules[f"{expected}.QtCore"].pyqtSignal

"""Krita's application, as the docker needs it: the active document, the plugin's settings,
quitting, and the docker's base class. With document.py (documents and layers), the only part
of the plugin that touches Krita's API; the rest works on what these return."""

from __future__ import annotations

from krita import DockWidget, Krita

__all__ = ["DockWidget", "active_document", "read_setting", "when_quitting", "write_setting"]

GROUP = "paintstep"  # the plugin's section in kritarc


def active_document():
    """The document in the active window, or None."""
    return Krita.instance().activeDocument()


def read_setting(name: str, default: str) -> str:
    return Krita.instance().readSetting(GROUP, name, default)


def write_setting(name: str, value) -> None:
    Krita.instance().writeSetting(GROUP, name, str(value))


def when_quitting(callback) -> None:
    Krita.instance().notifier().applicationClosing.connect(callback)

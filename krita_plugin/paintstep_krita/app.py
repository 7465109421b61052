"""Krita's application, as the plugin needs it: the active document, the plugin's settings,
quitting, the docker's base class and its registration. With document.py (documents and
layers), the only part of the plugin that touches Krita's API; the rest works on what these
return (selftest.py, which drives Krita's GUI for the tests, aside)."""

from __future__ import annotations

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Krita

__all__ = [
    "DockWidget",
    "active_document",
    "add_docker",
    "read_setting",
    "when_quitting",
    "write_setting",
]

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


def add_docker(name: str, docker: type) -> None:
    """Offer `docker` in Krita's Settings > Dockers, on the right."""
    Krita.instance().addDockWidgetFactory(
        DockWidgetFactory(name, DockWidgetFactoryBase.DockRight, docker)
    )

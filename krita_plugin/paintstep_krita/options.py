"""The chosen engine's options as a form, built from what the server's welcome says of them.

Whole numbers get a spin box, numbers a decimal spin box, texts with choices a drop-down and
other texts a line. Values the artist changes are kept per engine (through `save`) and sent with
each job; the rest are left to the engine's own defaults. Qt only: no Krita here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .qt import QtWidgets


class OptionsForm(QtWidgets.QWidget):
    def __init__(self, load: Callable[[str], str], save: Callable[[str, str], None]) -> None:
        super().__init__()
        self.load, self.save = load, save
        self.layout_ = QtWidgets.QFormLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.engine = ""
        self.specs: dict[str, dict] = {}
        self.widgets: dict[str, QtWidgets.QWidget] = {}

    def show_engine(self, engine: str, options: list[dict]) -> None:
        """Rebuild the form for `engine`, with the values kept for it."""
        while self.layout_.rowCount():
            self.layout_.removeRow(0)
        self.engine = engine
        self.specs = {spec["name"]: spec for spec in options}
        self.widgets = {}
        kept = self.kept()
        for spec in options:
            widget = self.widget_for(spec)
            self.widgets[spec["name"]] = widget
            if spec["name"] in kept:
                self.set_value(spec["name"], kept[spec["name"]])
            self.watch(widget)
            widget.setToolTip(spec.get("help", ""))
            self.layout_.addRow(spec["name"].replace("_", " "), widget)

    def widget_for(self, spec: dict) -> QtWidgets.QWidget:
        kind, default = spec.get("type"), spec.get("default")
        low, high = spec.get("minimum"), spec.get("maximum")
        if kind == "int":
            box = QtWidgets.QSpinBox()
            box.setRange(int(low if low is not None else -(2**31)), int(high or 2**31 - 1))
            box.setValue(int(default))
            return box
        if kind == "float":
            box = QtWidgets.QDoubleSpinBox()
            box.setDecimals(3)
            box.setSingleStep(0.05)
            box.setRange(float(low if low is not None else -1e9), float(high or 1e9))
            box.setValue(float(default))
            return box
        if spec.get("choices"):
            choice = QtWidgets.QComboBox()
            choice.addItems(list(spec["choices"]))
            choice.setCurrentText(str(default))
            return choice
        return QtWidgets.QLineEdit(str(default or ""))

    def watch(self, widget: QtWidgets.QWidget) -> None:
        for signal in ("valueChanged", "currentTextChanged", "textChanged"):
            if hasattr(widget, signal):
                getattr(widget, signal).connect(lambda *_: self.keep())
                return

    def value(self, name: str) -> Any:
        widget = self.widgets[name]
        if isinstance(widget, (QtWidgets.QSpinBox, QtWidgets.QDoubleSpinBox)):
            return widget.value()
        if isinstance(widget, QtWidgets.QComboBox):
            return widget.currentText()
        return widget.text().strip()

    def set_value(self, name: str, value: Any) -> None:
        widget = self.widgets[name]
        try:
            if isinstance(widget, QtWidgets.QSpinBox):
                widget.setValue(int(value))
            elif isinstance(widget, QtWidgets.QDoubleSpinBox):
                widget.setValue(float(value))
            elif isinstance(widget, QtWidgets.QComboBox):
                if widget.findText(str(value)) >= 0:
                    widget.setCurrentText(str(value))
            else:
                widget.setText(str(value))
        except (TypeError, ValueError):
            pass  # a kept value the engine no longer takes: its default stays

    def chosen(self) -> dict[str, Any]:
        """The options that differ from the engine's defaults."""
        chosen = {}
        for name, spec in self.specs.items():
            value = self.value(name)
            default = spec.get("default")
            if spec.get("type") == "float":
                differs = abs(float(value) - float(default)) > 1e-9
            else:
                differs = value != default
            if differs:
                chosen[name] = value
        return chosen

    def kept(self) -> dict[str, Any]:
        try:
            kept = json.loads(self.load(f"options.{self.engine}") or "{}")
        except ValueError:
            return {}
        return kept if isinstance(kept, dict) else {}

    def keep(self) -> None:
        self.save(f"options.{self.engine}", json.dumps(self.chosen()))

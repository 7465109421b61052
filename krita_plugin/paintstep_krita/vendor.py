"""Krita's Python has no pyzmq or msgpack: the installer puts them, with Paintstep's client
and protocol modules, into this package's `vendor` folder, which goes first on the path."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "vendor"


def client_module():
    """paintstep.wire.client, from the vendored folder when there is one."""
    if FOLDER.is_dir() and str(FOLDER) not in sys.path:
        sys.path.insert(0, str(FOLDER))
    return importlib.import_module("paintstep.wire.client")


def protocol_module():
    client_module()
    return importlib.import_module("paintstep.wire.protocol")

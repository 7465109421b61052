"""Where Paintstep keeps its files for this user: caches, logs, settings and keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _base(env: str, fallback: Path, mac: str, windows: str) -> Path:
    if sys.platform == "win32":
        local = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return local / "Paintstep" / windows
    if sys.platform == "darwin":
        return Path.home() / "Library" / mac / "Paintstep"
    return Path(os.environ.get(env) or fallback) / "paintstep"


def data_dir() -> Path:
    """Paintstep's own files: the server's virtual environment that install.py makes."""
    return _base("XDG_DATA_HOME", Path.home() / ".local" / "share", "Application Support", "")


def installed_command() -> Path:
    """The `paintstep` command install.py puts into its virtual environment."""
    venv = data_dir() / "venv"
    return venv / ("Scripts/paintstep.exe" if sys.platform == "win32" else "bin/paintstep")


def cache_dir() -> Path:
    """Job results the server keeps (pruned by age and size)."""
    return _base("XDG_CACHE_HOME", Path.home() / ".cache", "Caches", "Cache")


def log_dir() -> Path:
    return _base("XDG_STATE_HOME", Path.home() / ".local" / "state", "Logs", "Logs")


def config_dir() -> Path:
    """Settings and CURVE keys."""
    return _base("XDG_CONFIG_HOME", Path.home() / ".config", "Preferences", "Config")

"""Put the plugin into a fresh Krita profile (HOME), with what Krita's Python lacks vendored.

Vendoring goes through install.py's own code; the plugin is copied, not rebuilt, per test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def installer():
    """install.py as a module: the tests vendor exactly as it does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("paintstep_installer", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vendor(folder: Path) -> Path:
    """What install.py vendors into the plugin for Krita's Python (the system python3 here):
    pyzmq and msgpack wheels, and Paintstep's numpy-free client modules."""
    setup = installer()
    if not (folder / "zmq").exists():
        setup.vendor_into(folder, setup.krita_python(None), setup.wheel_platforms(None))
    return folder


def install(home: Path, vendored: Path) -> Path:
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    pykrita.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "krita_plugin" / "paintstep_krita.desktop", pykrita)
    target = pykrita / "paintstep_krita"
    shutil.copytree(ROOT / "krita_plugin" / "paintstep_krita", target, dirs_exist_ok=True)
    shutil.copytree(vendored, target / "vendor", dirs_exist_ok=True)
    config = home / ".config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "kritarc").write_text("[python]\nenable_paintstep_krita=true\n")
    return target


def run_gui(home: Path, result: Path, **env: str) -> dict:
    """Start Krita's full GUI under xvfb with HOME=home and the plugin's self-test asked to
    write to `result`; returns what it wrote (raises with Krita's output when it wrote nothing)."""
    import json
    import os
    import random

    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "PAINTSTEP"))
    }
    environment.update(HOME=str(home), PAINTSTEP_SELFTEST=str(result), **env)
    done = subprocess.run(
        ["xvfb-run", "-a", "-n", str(random.randint(100, 30000))]
        + ["-s", "-screen 0 1600x1000x24", "krita", "--nosplash"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not result.exists():
        raise AssertionError(f"no result from Krita:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(result.read_text())

"""Put the plugin into a fresh Krita profile (HOME), with what Krita's Python lacks vendored.

A test helper until install.py does the same for painters (the installer issue).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ("__init__.py", "client.py", "protocol.py", "keys.py", "errors.py", "paths.py")


def vendor(folder: Path) -> Path:
    """pyzmq and msgpack wheels for this Python (Krita's is the same 3.11 here), and
    Paintstep's numpy-free client modules as the package `paintstep`."""
    if not (folder / "zmq").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(folder),
                "--only-binary=:all:",
                "pyzmq",
                "msgpack",
            ],
            check=True,
        )
    (folder / "paintstep").mkdir(parents=True, exist_ok=True)
    for name in LIBRARY:
        shutil.copy(ROOT / "server" / name, folder / "paintstep" / name)
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

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


def resources(folder: Path) -> Path | None:
    """Krita's resource folder as a first start in a fresh HOME leaves it (its bundles and the
    database it builds from them: 10 s of CPU, 30-60 s on a busy machine), made once in
    `folder` with kritarunner; None when Krita did not make one. Tests copy it into their fresh
    homes (with `add_resources`), as the profile of a Krita that was started before. Workers
    of one test session share it: the first makes it while the others wait on a lock."""
    import fcntl
    import os
    import random

    made = folder / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (made / "resourcecache.sqlite").exists() and not (folder / "failed").exists():
            home = folder / "home"
            environment = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("XDG_", "PAINTSTEP", "QT_QPA"))
            }
            environment.update(
                HOME=str(home),
                PAINTSTEP_RESULT=str(folder / "nothing.json"),
                PYTHONPATH=str(ROOT / "tests" / "krita"),
            )
            command = ["xvfb-run", "-a", "-n", str(random.randint(100, 30000)), "kritarunner"]
            try:
                subprocess.run(
                    [*command, "-s", "krita_checks", "-f", "nothing"],
                    env=environment,
                    capture_output=True,
                    timeout=240,
                )
                built = home / ".local" / "share" / "kritarunner"
                if (built / "resourcecache.sqlite").exists():
                    shutil.copytree(built, folder / "copying")
                    (folder / "copying").rename(made)
            except (OSError, subprocess.SubprocessError):
                pass
            if not made.exists():
                (folder / "failed").touch()  # each test's Krita then starts from nothing
    return made if made.exists() else None


def add_resources(home: Path, made: Path | None, application: str = "krita") -> None:
    """Copy the resource folder that `resources` made into HOME's profile of `application`
    (krita for the GUI, kritarunner for scripts). Nothing else is shared: settings, autosaves
    and the plugin stay each test's own."""
    if made is not None:
        shutil.copytree(made, home / ".local" / "share" / application, dirs_exist_ok=True)


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

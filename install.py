#!/usr/bin/env python3
"""Install Paintstep for this user and paint the bundled sample once.

    python3 install.py              install (or upgrade) and paint the sample into ./out
    python3 install.py --no-demo    install only
    python3 install.py --uninstall  remove what this installed

Paintstep gets its own virtual environment in the user's data folder, so nothing else on the
machine changes. Needs only Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_paths():
    """Paintstep's own paths module, read from this folder (Paintstep is not installed yet)."""
    spec = importlib.util.spec_from_file_location("paintstep_paths", HERE / "server" / "paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_dir() -> Path:
    """Where Paintstep keeps its own files for this user."""
    return load_paths().data_dir()


def venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def say(message: str) -> None:
    print(f"[paintstep] {message}", flush=True)


def fail(message: str) -> None:
    print(f"[paintstep] {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError:
        fail(
            f"This failed: {' '.join(map(str, command))}\n"
            "Read the lines above for the reason; when it is the network, connect and run "
            "install.py again (it picks up where it stopped)."
        )


def install(demo: bool) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - this check is for older Pythons
        fail(f"Paintstep needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    env = data_dir() / "venv"
    say(f"1/3 Virtual environment in {env}")
    try:
        env.parent.mkdir(parents=True, exist_ok=True)
        if not venv_python(env).exists():
            venv.EnvBuilder(with_pip=True).create(env)
    except OSError as error:
        fail(f"Cannot create {env} ({error.strerror}); check that the folder is writable.")
    python = str(venv_python(env))
    say("2/3 Installing Paintstep and what it needs (numpy, pillow, skia, pyzmq, msgpack, av)")
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", str(HERE)])
    command = load_paths().installed_command()
    say(f"Installed: {command}")
    if demo:
        say("3/3 Painting the sample picture into ./out")
        run([str(command), "paint", "--sample", "--out", "out"])
        say("Done. Open out/process.gif to watch it; out/layers/ holds each step as a layer.")
    else:
        say(f"3/3 Skipped the sample (--no-demo). Try: {command} paint --sample --out out")


def uninstall() -> None:
    env = data_dir() / "venv"
    if env.exists():
        shutil.rmtree(env)
        say(f"Removed {env}")
    else:
        say(f"Nothing to remove: {env} does not exist.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-demo", action="store_true", help="do not paint the sample")
    parser.add_argument("--uninstall", action="store_true", help="remove what this installed")
    args = parser.parse_args()
    if args.uninstall:
        uninstall()
    else:
        install(demo=not args.no_demo)


if __name__ == "__main__":
    main()

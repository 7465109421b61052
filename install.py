#!/usr/bin/env python3
"""Install Paintstep for this user: the server, the Krita plugin, and a first painting.

    python3 install.py                  install (or upgrade) and paint the sample into ./out
    python3 install.py --no-demo        install only
    python3 install.py --diffusion      also the diffusion engine (torch, diffusers, peft):
                                        a CUDA torch where an NVIDIA GPU is found, else CPU
    python3 install.py --uninstall      remove what this installed (settings and jobs stay)
    python3 install.py --zip            build paintstep-krita-plugin.zip for Krita's
                                        Tools > Scripts > Import Python Plugin from File...

Paintstep gets its own virtual environment in the user's data folder, so nothing else on the
machine changes; the plugin goes into Krita's resource folder and is enabled in kritarc. Needs
only Python 3.10 or newer.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "paintstep_krita"
# The part of Paintstep the plugin carries: the package's __init__ and its `wire` package, whole
# (the client, the protocol, shared memory, keys: nothing there needs numpy, which Krita's
# Python lacks).
WIRE = HERE / "server" / "wire"
VENDORED = ("pyzmq", "msgpack")


def load_paths():
    """Paintstep's own paths module, read from this folder (Paintstep is not installed yet)."""
    spec = importlib.util.spec_from_file_location("paintstep_paths", WIRE / "paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_dir() -> Path:
    """Where Paintstep keeps its own files for this user."""
    return load_paths().data_dir()


def venv_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def path_line(folder: Path, shell: str, system: str) -> str:
    """What to run once so that `paintstep` is found on the PATH, for the user's shell."""
    if system == "win32":
        return f'setx PATH "%PATH%;{folder}"   (then open a new terminal)'
    name = Path(shell).name
    if name == "fish":
        return f"fish_add_path '{folder}'"
    rc = {"zsh": "~/.zshrc", "bash": "~/.bashrc"}.get(name, "~/.profile")
    if name == "bash" and system == "darwin":
        rc = "~/.bash_profile"
    return f"echo 'export PATH=\"{folder}:$PATH\"' >> {rc}   (then open a new terminal)"


def say(message: str) -> None:
    print(f"[paintstep] {message}", flush=True)


class Failure(Exception):
    """What went wrong and what to do, in a sentence."""


def run(command: list[str], what: str) -> None:
    try:
        subprocess.run(command, check=True)
    except (subprocess.CalledProcessError, OSError):
        raise Failure(
            f"Could not {what} (the lines above say why). When it is the network, connect and "
            "run install.py again: it picks up where it stopped."
        ) from None


# -- torch ----------------------------------------------------------------------------------

TORCH_INDEX = "https://download.pytorch.org/whl/"
CUDA_BUILD = "cu126"


def found_gpu() -> str:
    """'cuda' when an NVIDIA driver answers, 'mps' on Apple silicon, else 'cpu'."""
    if sys.platform == "darwin":
        return "mps" if platform.machine() == "arm64" else "cpu"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            subprocess.run([smi, "-L"], check=True, capture_output=True, timeout=20)
            return "cuda"
        except (subprocess.SubprocessError, OSError):
            pass
    return "cpu"


def torch_install(choice: str, system: str, spec: str | None = None) -> tuple[list[str], str]:
    """pip's arguments for the torch build `choice` (auto, cpu, cuda) on `system`, and what it
    is in words. PyPI's torch is a CUDA build on Linux and a CPU build on Windows, so each
    gets the other from PyTorch's own index; macOS's is the only one (with MPS)."""
    device = found_gpu() if choice == "auto" else choice
    requirement = spec or "torch>=2.4,<3"
    if system == "darwin":
        return [requirement], "torch for macOS (Apple GPU where there is one)"
    if device == "cuda":
        if system == "win32":
            return [requirement, "--index-url", TORCH_INDEX + CUDA_BUILD], "a CUDA build of torch"
        return [requirement], "a CUDA build of torch (~3 GB)"
    if spec:  # an exact release, such as one a machine keeps on its own disk
        return [requirement], "torch for the CPU"
    if system == "win32":
        return [requirement], "a CPU build of torch"
    return [requirement, "--index-url", TORCH_INDEX + "cpu"], "a CPU build of torch"


# -- Krita ----------------------------------------------------------------------------------


def krita_dir(given: str | None) -> Path | None:
    """Krita's resource folder (it holds pykrita/), or None when Krita is not found."""
    if given:
        return Path(given).expanduser()
    if sys.platform == "win32":
        folder = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "krita"
    elif sys.platform == "darwin":
        folder = Path.home() / "Library" / "Application Support" / "krita"
    else:
        data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        folder = Path(data) / "krita"
    if folder.exists() or shutil.which("krita"):
        return folder
    return None


def kritarc() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "kritarc"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences" / "kritarc"
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "kritarc"


def krita_python(given: str | None) -> str:
    """The X.Y of the Python inside Krita: the system python3 for Krita from Linux packages,
    the one Krita bundles otherwise."""
    if given:
        if not re.fullmatch(r"3\.\d+", given):
            raise Failure(f"--krita-python takes a version such as 3.10, not {given!r}.")
        return given
    krita = shutil.which("krita")
    # Krita from the system packages runs the system's python3, the one beside it (not
    # whichever python3 comes first on PATH: a pyenv or an active venv).
    beside = Path(krita).parent / "python3" if krita else None
    system_python = str(beside) if beside is not None and beside.exists() else None
    if sys.platform.startswith("linux") and krita and krita.startswith("/usr/") and system_python:
        found = subprocess.run(
            [system_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if found:
            return found
    say("Could not tell which Python this Krita runs; assuming 3.10 (Krita 5's own builds).")
    say("If the docker does not load, run install.py again with --krita-python X.Y.")
    return "3.10"


def wheel_platforms(given: str | None) -> list[str]:
    """pip --platform tags for the machine Krita runs on."""
    if given:
        return [given]
    machine = platform.machine().lower()
    if sys.platform == "win32":
        return ["win_amd64"]
    if sys.platform == "darwin":
        arch = "arm64" if machine in ("arm64", "aarch64") else "x86_64"
        return [f"macosx_11_0_{arch}", f"macosx_10_9_{arch}", "macosx_10_9_universal2"]
    arch = "aarch64" if machine in ("arm64", "aarch64") else "x86_64"
    return [f"manylinux_2_28_{arch}", f"manylinux_2_17_{arch}", f"manylinux2014_{arch}"]


def vendor_into(folder: Path, python: str, platforms: list[str]) -> None:
    """pyzmq and msgpack wheels for Krita's Python, unpacked, plus Paintstep's `wire` package."""
    with tempfile.TemporaryDirectory() as wheels:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
        command += ["--python-version", python, "--implementation", "cp", "--dest", wheels]
        for tag in platforms:
            command += ["--platform", tag]
        run([*command, *VENDORED], f"download {' and '.join(VENDORED)} for Krita's Python {python}")
        for wheel in Path(wheels).glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(folder)
    (folder / "paintstep").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "server" / "__init__.py", folder / "paintstep" / "__init__.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(WIRE, folder / "paintstep" / "wire", ignore=ignore, dirs_exist_ok=True)


def build_plugin(into: Path, python: str, platforms: list[str]) -> None:
    """The plugin's files (NAME.desktop and NAME/ with its vendored folder) in `into`."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "krita_plugin" / f"{PLUGIN}.desktop", into)
    package = into / PLUGIN
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "vendor")
    shutil.copytree(HERE / "krita_plugin" / PLUGIN, package, ignore=ignore)
    vendor_into(package / "vendor", python, platforms)


def install_plugin(resources: Path, python: str, platforms: list[str]) -> Path:
    """Put the plugin into Krita's pykrita folder, replacing an older one only once the new one
    is complete, so a failure leaves no half-installed plugin."""
    pykrita = resources / "pykrita"
    try:
        pykrita.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".paintstep-", dir=pykrita))
    except OSError as error:
        raise Failure(
            f"Cannot write to Krita's folder {pykrita} ({error.strerror}); give a writable "
            "one with --krita-dir."
        ) from None
    try:
        build_plugin(staging, python, platforms)
        target = pykrita / PLUGIN
        try:
            if target.exists():
                # Aside first, then swap: on Windows a running Krita holds the old DLLs, and
                # a rename fails cleanly where deleting would leave half a plugin.
                target.replace(staging / "old")
            (staging / PLUGIN).replace(target)
            (staging / f"{PLUGIN}.desktop").replace(pykrita / f"{PLUGIN}.desktop")
        except OSError as error:
            raise Failure(
                f"Cannot replace the plugin in {pykrita} ({error.strerror}); close Krita and "
                "run install.py again."
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return pykrita / PLUGIN


def set_enabled(path: Path, enabled: bool) -> None:
    """Add (or remove) `enable_paintstep_krita=true` under [python] in kritarc, leaving every
    other line as it is."""
    raw = path.read_bytes() if path.exists() else b""
    text = raw.decode("utf-8", errors="surrogateescape")  # as it is, \r\n included
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    key = f"enable_{PLUGIN}"
    lines = [line for line in lines if line.split("=")[0].strip() != key]
    if enabled:
        if "[python]" in (line.strip() for line in lines):
            at = [line.strip() for line in lines].index("[python]")
            lines.insert(at + 1, f"{key}=true")
        else:
            lines += ["", "[python]", f"{key}=true"] if lines else ["[python]", f"{key}=true"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as out:
        out.write(newline.join(lines) + newline)


# -- the steps --------------------------------------------------------------------------------


def install(args: argparse.Namespace) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - this check is for older Pythons
        raise Failure(f"Paintstep needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    env = data_dir() / "venv"
    say(f"1/4 Virtual environment in {env}")
    try:
        env.parent.mkdir(parents=True, exist_ok=True)
        if not venv_python(env).exists():
            venv.EnvBuilder(with_pip=True).create(env)
    except OSError as error:
        raise Failure(
            f"Cannot create {env} ({error.strerror}); check the folder is writable."
        ) from None
    python = str(venv_python(env))
    extras = [
        name
        for name, wanted in (("viewer", not args.no_viewer), ("diffusion", args.diffusion))
        if wanted
    ]
    package = f"{HERE}[{','.join(extras)}]" if extras else str(HERE)
    what = "numpy, pillow, skia, pyzmq, msgpack, av" + ("" if args.no_viewer else ", PySide6")
    say(f"2/4 Installing Paintstep and what it needs ({what})")
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], "update pip")
    if args.diffusion:
        # torch first, from the index for the build chosen; the diffusion extra then keeps it.
        arguments, build = torch_install(args.diffusion, sys.platform, args.torch)
        say(f"    The diffusion engine: {build}, then diffusers, transformers and peft")
        run([python, "-m", "pip", "install", "--quiet", *arguments], "install torch")
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", package], "install Paintstep")
    if args.diffusion:
        config = load_paths().config_dir() / "diffusion.json"
        say(f"    List your model weights in {config}: see docs/diffusion.md.")
    command = load_paths().installed_command()
    say(f"Installed: {command}")
    on_path = os.environ.get("PATH", "").split(os.pathsep)
    if str(command.parent) not in on_path:
        say("    To call it as `paintstep`, put its folder on your PATH:")
        say("    " + path_line(command.parent, os.environ.get("SHELL", ""), sys.platform))

    resources = None if args.no_krita else krita_dir(args.krita_dir)
    if resources is None:
        say("3/4 No Krita found (no `krita` command, no Krita folder): skipped the plugin.")
        say("    Install Krita, or give its resource folder with --krita-dir, and run again.")
    else:
        version = krita_python(args.krita_python)
        say(f"3/4 Krita plugin into {resources / 'pykrita'} (for Krita's Python {version})")
        install_plugin(resources, version, wheel_platforms(args.platform))
        set_enabled(kritarc(), True)
        say(f"    Enabled in {kritarc()}. Start Krita: Settings > Dockers > Paintstep.")

    if args.no_demo:
        say(f"4/4 Skipped the sample (--no-demo). Try: {command} paint --sample --out out")
        return
    say("4/4 Painting the sample picture into ./out")
    run([str(command), "paint", "--sample", "--out", "out"], "paint the sample")
    say("Done. Open out/process.gif to watch it; out/layers/ holds each step as a layer.")
    if not args.no_viewer:
        say(f"    Or scrub through it: {command} view out")


def uninstall(args: argparse.Namespace) -> None:
    """Remove the plugin, its kritarc entry and the virtual environment; settings ([paintstep]
    in kritarc), keys and the job cache stay."""
    resources = krita_dir(args.krita_dir)
    try:
        if resources is not None:
            pykrita = resources / "pykrita"
            for entry in (pykrita / PLUGIN, pykrita / f"{PLUGIN}.desktop"):
                if entry.is_dir():
                    # Renamed aside before deleting: if Krita holds a file, nothing is half gone.
                    aside = entry.with_name(f".{PLUGIN}-removing")
                    entry.replace(aside)
                    shutil.rmtree(aside)
                    say(f"Removed {entry}")
                elif entry.exists():
                    entry.unlink()
                    say(f"Removed {entry}")
        if kritarc().exists():
            set_enabled(kritarc(), False)
            say(f"Removed the plugin's line from {kritarc()}")
        env = data_dir() / "venv"
        if env.exists():
            aside = env.with_name(".venv-removing")
            env.replace(aside)
            shutil.rmtree(aside)
            say(f"Removed {env}")
    except OSError as error:
        raise Failure(
            f"Cannot remove {error.filename} ({error.strerror}); close Krita (and the Paintstep "
            "server it started) and run install.py --uninstall again."
        ) from None
    say("Paintstep is uninstalled; your settings and finished jobs are kept.")


def build_zip(args: argparse.Namespace) -> None:
    version = args.krita_python or "3.10"
    destination = Path("paintstep-krita-plugin.zip").resolve()
    with tempfile.TemporaryDirectory() as folder:
        build_plugin(Path(folder), version, wheel_platforms(args.platform))
        with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(folder))
    say(f"Built {destination} for Krita's Python {version} on {wheel_platforms(args.platform)[0]}")
    say("In Krita: Tools > Scripts > Import Python Plugin from File..., then restart Krita.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-demo", action="store_true", help="do not paint the sample")
    parser.add_argument("--no-krita", action="store_true", help="do not install the Krita plugin")
    parser.add_argument(
        "--no-viewer", action="store_true", help="leave out the viewer (PySide6, ~100 MB)"
    )
    parser.add_argument(
        "--diffusion",
        nargs="?",
        const="auto",
        choices=("auto", "cpu", "cuda"),
        help="also install the diffusion engine, with a torch for this GPU (auto), the CPU or CUDA",
    )
    parser.add_argument(
        "--torch", metavar="SPEC", help="with --diffusion: the torch release, e.g. torch==2.13.0"
    )
    parser.add_argument("--krita-dir", metavar="DIR", help="Krita's resource folder")
    parser.add_argument("--krita-python", metavar="X.Y", help="the Python version Krita runs")
    parser.add_argument("--platform", metavar="TAG", help="wheel platform tag for the plugin")
    parser.add_argument("--uninstall", action="store_true", help="remove what this installed")
    parser.add_argument("--zip", action="store_true", help="build the plugin zip for Krita")
    args = parser.parse_args()
    try:
        if args.uninstall:
            uninstall(args)
        elif args.zip:
            build_zip(args)
        else:
            install(args)
    except Failure as failure:
        print(f"[paintstep] {failure}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

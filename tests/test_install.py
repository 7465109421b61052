"""install.py for real: into a fresh HOME, the plugin loading in Krita's GUI with its vendored
pyzmq and msgpack and reaching the server it manages, then --uninstall, and --zip."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import NO_NUMPY, photo
from PIL import Image
from test_krita import HAVE_KRITA
from test_server import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent / "krita"))
import plugin_setup  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "krita"))

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def installer(home: Path, *args: str, cwd: Path | None = None, **env: str):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    # No .pyc compiled at install: a test imports a few modules, torch alone has thousands.
    environment.update(HOME=str(home), PIP_NO_COMPILE="1", **env)
    return subprocess.run(
        [sys.executable, str(ROOT / "install.py"), *args],
        env=environment,
        cwd=cwd or home,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(
    not HAVE_KRITA and not os.environ.get("PAINTSTEP_REQUIRE_KRITA"),
    reason="Krita and xvfb-run are not installed",
)
def test_install_gives_a_working_docker_and_uninstall_removes_only_what_it_added(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    kritarc = home / ".config" / "kritarc"
    kritarc.write_text("[General]\nfoo=bar\n\n[paintstep]\nsteps=6\n")
    done = installer(home, "--no-demo", "--no-viewer")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3/4 Krita plugin into" in done.stdout
    plugin = home / ".local" / "share" / "krita" / "pykrita" / "paintstep_krita"
    assert (plugin / "vendor" / "zmq").is_dir() and (plugin / "vendor" / "msgpack").is_dir()
    assert (plugin / "vendor" / "paintstep" / "wire" / "client.py").exists()
    assert "enable_paintstep_krita=true" in kritarc.read_text()
    assert "foo=bar" in kritarc.read_text()

    again = installer(home, "--no-demo", "--no-viewer")  # upgrading in place keeps it working
    assert again.returncode == 0, again.stderr[-3000:]
    assert kritarc.read_text().count("enable_paintstep_krita=true") == 1

    picture = tmp_path / "picture.png"
    Image.fromarray(photo("coffee", 120)).save(picture)
    seen = plugin_setup.run_gui(
        home,
        tmp_path / "result.json",
        PAINTSTEP_SELFTEST_PICTURE=str(picture),
        PAINTSTEP_SELFTEST_MEASURE_ONLY="1",  # generate and apply: what the install must allow
        PAINTSTEP_SELFTEST_SETTLE="0",  # no freezes measured: no 5 s wait after applying
        PAINTSTEP_SERVER=f"tcp://127.0.0.1:{free_port()}",
    )
    assert "error" not in seen, seen["error"]
    assert seen["zmq"].startswith(str(plugin / "vendor"))
    assert seen["msgpack"].startswith(str(plugin / "vendor"))
    assert seen["docker_found"] and "started by Paintstep" in seen["server_before"]
    assert seen["finished"] and len(seen["steps"]) == 6  # steps=6 from the kept settings

    gone = installer(home, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not plugin.exists()
    assert not (plugin.parent / "paintstep_krita.desktop").exists()
    assert not (home / ".local" / "share" / "paintstep" / "venv").exists()
    text = kritarc.read_text()
    assert "enable_paintstep_krita" not in text
    assert "foo=bar" in text and "[paintstep]" in text  # the artist's settings stay
    assert (home / ".cache" / "paintstep" / "jobs").is_dir()  # and finished jobs


def load_installer():
    import importlib.util

    spec = importlib.util.spec_from_file_location("installer", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "before, enabled, after",
    [
        ("", "[python]\nenable_paintstep_krita=true\n", ""),
        (
            "[General]\r\nrecent=/home/\u00c1gnes/x.kra\r\n[python]\r\nenable_x=true\r\n",
            "[General]\r\nrecent=/home/\u00c1gnes/x.kra\r\n[python]\r\n"
            "enable_paintstep_krita=true\r\nenable_x=true\r\n",
            "[General]\r\nrecent=/home/\u00c1gnes/x.kra\r\n[python]\r\nenable_x=true\r\n",
        ),
        (
            "[python]\nenable_paintstep_krita = false\n[paintstep]\nsteps=8\n",
            "[python]\nenable_paintstep_krita=true\n[paintstep]\nsteps=8\n",
            "[python]\n[paintstep]\nsteps=8\n",
        ),
    ],
)
def test_kritarc_gets_one_line_and_loses_only_that(tmp_path, before, enabled, after):
    set_enabled = load_installer().set_enabled
    path = tmp_path / "kritarc"
    if before:
        path.write_bytes(before.encode("utf-8"))
    set_enabled(path, True)
    assert path.read_bytes().decode("utf-8") == enabled
    set_enabled(path, False)
    assert path.read_bytes().decode("utf-8") == (after or "[python]\n")


def test_every_module_of_wire_imports_without_numpy_and_needs_nothing_outside_it():
    """The plugin carries paintstep.wire whole, for Krita's Python, which has no numpy: each of
    its modules (found, not listed) imports with numpy blocked and pulls in nothing of Paintstep
    beyond the package's __init__ and wire itself."""
    wire = ROOT / "server" / "wire"
    names = sorted(path.stem for path in wire.glob("*.py") if path.stem != "__init__")
    assert {"client", "protocol", "shared", "keys", "paths"} <= set(names)
    code = NO_NUMPY + (
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module('paintstep.wire.' + name)\n"
        "assert 'numpy' not in sys.modules\n"
        "for name in sorted(sys.modules):\n"
        "    if name.split('.')[0] == 'paintstep':\n"
        "        print(name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = set(done.stdout.split())
    assert imported == {"paintstep", "paintstep.wire"} | {f"paintstep.wire.{n}" for n in names}


def test_zip_for_importing_into_krita(tmp_path):
    done = installer(tmp_path, "--zip", "--krita-python", "3.10", "--platform", "win_amd64")
    assert done.returncode == 0, done.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "paintstep-krita-plugin.zip") as archive:
        names = set(archive.namelist())
    assert "paintstep_krita.desktop" in names
    assert "paintstep_krita/__init__.py" in names and "paintstep_krita/manual.html" in names
    wire = {p.name for p in (ROOT / "server" / "wire").glob("*.py")}
    vendored = {
        n.rsplit("/", 1)[1] for n in names if n.startswith("paintstep_krita/vendor/paintstep/wire/")
    }
    assert vendored == wire  # the package whole, nothing left behind
    assert "paintstep_krita/vendor/paintstep/__init__.py" in names
    assert any(n.startswith("paintstep_krita/vendor/zmq/") and n.endswith(".pyd") for n in names)
    assert any(n.startswith("paintstep_krita/vendor/msgpack/") for n in names)


def test_failures_say_what_to_do_and_leave_no_half_installed_plugin(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where Krita's folder should be")
    done = installer(tmp_path, "--no-demo", "--no-viewer", "--krita-dir", str(blocker / "krita"))
    assert done.returncode == 1
    assert "give a writable one with --krita-dir" in done.stderr
    (tmp_path / "h2").mkdir()
    offline = installer(
        tmp_path / "h2",
        "--no-demo",
        "--no-krita",
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_NO_CACHE_DIR="1",
        PIP_FIND_LINKS="",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
    )
    assert offline.returncode == 1
    assert "connect and run install.py again" in offline.stderr


@pytest.mark.parametrize(
    "choice, system, index",
    [
        ("cpu", "linux", "whl/cpu"),  # PyPI's Linux torch is the CUDA build
        ("cuda", "linux", None),
        ("cpu", "win32", None),  # PyPI's Windows torch is the CPU build
        ("cuda", "win32", "whl/cu"),
        ("cuda", "darwin", None),
    ],
)
def test_diffusion_gets_the_torch_build_for_the_device(choice, system, index):
    arguments, _ = load_installer().torch_install(choice, system)
    given = " ".join(arguments)
    assert arguments[0].startswith("torch")
    assert (index in given) if index else ("--index-url" not in given)


@pytest.mark.parametrize(
    "shell, system, line",
    [
        ("/bin/bash", "linux", """echo 'export PATH="/p/bin:$PATH"' >> ~/.bashrc"""),
        ("/bin/bash", "darwin", """echo 'export PATH="/p/bin:$PATH"' >> ~/.bash_profile"""),
        ("/usr/bin/zsh", "darwin", """echo 'export PATH="/p/bin:$PATH"' >> ~/.zshrc"""),
        ("/usr/bin/fish", "linux", "fish_add_path '/p/bin'"),
        ("", "linux", """echo 'export PATH="/p/bin:$PATH"' >> ~/.profile"""),
        ("", "win32", 'setx PATH "%PATH%;/p/bin"'),
    ],
)
def test_the_path_line_is_for_the_users_shell(shell, system, line):
    assert load_installer().path_line(Path("/p/bin"), shell, system).startswith(line)


def test_install_with_diffusion_gives_a_server_that_can_run_it(tmp_path):
    """--diffusion adds torch (here the release this machine keeps on disk) and the engine's
    libraries to Paintstep's own environment; the engine is then listed as ready."""
    home = tmp_path / "home"
    home.mkdir()
    done = installer(
        home,
        "--no-krita",
        "--no-demo",
        "--no-viewer",
        "--diffusion",
        "cpu",
        "--torch",
        "torch==2.13.0",
        XDG_DATA_HOME=str(home / "data"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The diffusion engine" in done.stdout and "diffusion.json" in done.stdout
    assert f'export PATH="{home / "data" / "paintstep" / "venv" / "bin"}:$PATH"' in done.stdout
    command = home / "data" / "paintstep" / "venv" / "bin" / "paintstep"
    engines = subprocess.run([str(command), "engines"], capture_output=True, text=True)
    assert "diffusion:" in engines.stdout and "not installed" not in engines.stdout

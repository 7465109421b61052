"""The docker in Krita's full GUI under Xvfb, against a real `paintstep serve`.

Krita starts with the plugin enabled in a fresh profile; the plugin's self-test opens a
picture, generates with the strokes engine, scrubs, applies all steps, and reports. The
screenshot it takes is kept as docs/docker.png when PAINTSTEP_UPDATE_SCREENSHOT is set.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import photo
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "krita"))

import plugin_setup  # noqa: E402
from test_krita import HAVE_KRITA  # noqa: E402
from test_server import ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    # One worker: the plugin's vendored folder is made once, and one Krita GUI runs at a time.
    pytest.mark.xdist_group("krita_docker"),
    pytest.mark.skipif(
        not HAVE_KRITA and not os.environ.get("PAINTSTEP_REQUIRE_KRITA"),
        reason="Krita and xvfb-run are not installed",
    ),
]


@pytest.fixture(scope="module")
def vendored(tmp_path_factory, krita_resources):
    """What the plugin vendors, and Krita's resources for the fresh homes (docker_run)."""
    return plugin_setup.vendor(tmp_path_factory.mktemp("vendor")), krita_resources


def docker_run(tmp_path: Path, vendored: tuple, picture, **env: str) -> dict:
    """Krita's GUI with the plugin in a fresh home (with the resources Krita made at its first
    start this run: a profile Krita was started in before), its self-test run on `picture`
    (saved as picture.png); what the self-test saw."""
    home = tmp_path / "home"
    vendored, resources = vendored
    plugin_setup.install(home, vendored)
    plugin_setup.add_resources(home, resources)
    path = tmp_path / "picture.png"
    Image.fromarray(picture).save(path)
    env.setdefault("PAINTSTEP_SELFTEST_SETTLE", "0")  # no freezes measured here: no 5 s wait
    return plugin_setup.run_gui(
        home, tmp_path / "result.json", PAINTSTEP_SELFTEST_PICTURE=str(path), **env
    )


def test_the_docker_generates_scrubs_and_applies_in_real_krita(tmp_path, vendored):
    server = ServerProcess(tmp_path).start()
    try:
        shot = tmp_path / "docker.png"
        seen = docker_run(
            tmp_path,
            vendored,
            photo("coffee", 240),
            PAINTSTEP_SELFTEST_SCREENSHOT=str(shot),
            PAINTSTEP_SERVER=server.address,
            PAINTSTEP_SELFTEST_OPTIONS=json.dumps({"style": "illustration"}),
            # "As frames" as well where asked: Krita 5.1.5 itself can crash in it under load.
            PAINTSTEP_SELFTEST_FRAMES=os.environ.get("PAINTSTEP_SELFTEST_FRAMES", ""),
        )
    finally:
        server.stop()
    assert "error" not in seen, seen["error"]
    assert seen["docker_found"]
    assert "Connected" in seen["server_before"]
    assert seen["saved_server"] == server.address  # typed in the docker, kept in kritarc
    assert seen["steps"] == [1, 2, 3, 4, 5, 6] and seen["finished"]
    assert seen["strip"] == 6 and seen["scrubbed_preview"]
    # The style offered in the engine's options form (from its option registry), and the
    # steps applied into a sub-group per stage, named for it, in the illustrator's order.
    assert {"paint", "illustration"} <= set(seen["style_choices"])
    assert seen["options_chosen"] == {"style": "illustration"}
    stages = ["Sketch", "Lines", "Flats", "Shading", "Details", "Finish"]
    assert seen["children"] == [[name, [f"Step {k}"]] for k, name in enumerate(stages, 1)]
    assert seen["top_level"].index(seen["group"]) > seen["top_level"].index("picture")
    assert seen["max_difference"] <= 6  # the steps alone rebuild the picture
    assert seen["single"] == [["Flats", ["Step 3"]]]  # one step on its own, in its stage
    assert seen["while_scrubbing"][-1] == "Paintstep preview" and seen["preview_locked"]
    # The canvas shows frame 3 while scrubbing (compared by mean colour with its thumbnail).
    assert max(abs(a - b) for a, b in zip(seen["preview_mean"], seen["frame3_mean"])) < 4
    assert "Paintstep preview" not in seen["after_scrubbing"]
    assert seen["frames_from_kept"] and seen["frames_kept"] <= 5  # 3 checkpoints + the last
    assert seen["after_scrubbing"] == seen["while_scrubbing"][:-1]
    assert seen["active_after"] != "Paintstep preview"
    assert seen["remembered_steps"] == "6"  # settings live in Krita's settings
    assert seen["target_choice"] == "Layer: reference"
    assert seen["target_steps"] == [1, 2, 3, 4]
    assert seen["target_difference"] <= 6  # painted from the canvas to the target layer
    assert seen["earlier"] == [4, 6]  # this document's jobs, newest first
    assert seen["fetched_steps"] == [1, 2, 3, 4, 5, 6] and seen["fetched_strip"] == 6
    if os.environ.get("PAINTSTEP_SELFTEST_FRAMES"):  # the fetched job's frames, animated
        assert seen["frames_layer"][0].endswith(" frames") and seen["frames_layer"][1]
    size = 240 * 160 * 4
    assert seen["file_target"] == ["File: picture.png", size, size]
    assert seen["screenshot"] and shot.stat().st_size > 10_000
    if os.environ.get("PAINTSTEP_UPDATE_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "docker.png")


def test_with_no_server_running_the_docker_starts_one_and_stops_it_with_krita(tmp_path, vendored):
    from paintstep.wire.client import Client, ServerLost
    from test_server import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    seen = docker_run(
        tmp_path,
        vendored,
        photo("chelsea", 160),
        PAINTSTEP_SERVER=address,
        PAINTSTEP_SERVE_COMMAND=f"{sys.executable} -m paintstep",
        PAINTSTEP_SELFTEST_MEASURE_ONLY="1",  # generate and apply are what this is about
    )
    assert "error" not in seen, seen["error"]
    assert "started by Paintstep" in seen["server_before"]
    assert seen["steps"] == [1, 2, 3, 4, 5, 6] and seen["finished"]
    with pytest.raises(ServerLost):  # gone with Krita
        Client(address, timeout=1).connect()


def test_the_docker_reaches_a_server_that_needs_keys(tmp_path, vendored):
    from paintstep.wire.keys import make_keys

    keys = tmp_path / "keys"
    make_keys(keys)
    server = ServerProcess(tmp_path, "--keys", str(keys)).start(wait=False)
    try:
        seen = docker_run(
            tmp_path,
            vendored,
            photo("coffee", 80),
            PAINTSTEP_SELFTEST_MEASURE_ONLY="1",
            PAINTSTEP_SERVER=server.address,
            PAINTSTEP_KEYS=str(keys),
        )
    finally:
        server.stop()
    assert "error" not in seen, seen["error"]
    assert "Connected" in seen["server_before"]
    assert seen["steps"] == [1, 2, 3, 4, 5, 6] and seen["finished"]


def test_the_docker_lets_the_diffusion_engine_finish_the_canvas_from_a_prompt(
    tmp_path, vendored, monkeypatch
):
    pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
    from conftest import diffusion_weights

    (tmp_path / "weights").mkdir()
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(diffusion_weights(tmp_path / "weights")))
    server = ServerProcess(tmp_path).start()
    try:
        seen = docker_run(
            tmp_path,
            vendored,
            photo("coffee", 96),
            PAINTSTEP_SELFTEST_MEASURE_ONLY="1",
            PAINTSTEP_SERVER=server.address,
            PAINTSTEP_SELFTEST_ENGINE="diffusion",
            PAINTSTEP_SELFTEST_SCREENSHOT=str(tmp_path / "diffusion.png"),
            PAINTSTEP_SELFTEST_PROMPT="a cup of coffee",
            PAINTSTEP_SELFTEST_OPTIONS=json.dumps(
                {"size": 32, "frames": 8, "sampling_steps": 3, "mode": "video", "guidance": 5.5}
            ),
        )
    finally:
        server.stop()
    assert "error" not in seen, seen["error"]
    assert seen["engine"] == "diffusion" and seen["prompt_enabled"]
    assert "None: let the engine finish the canvas" in seen["target_choices"]
    assert seen["steps"] == [1, 2, 3, 4, 5, 6] and seen["finished"]
    assert seen["starts_on_canvas"]  # frame 0 is the canvas, not blank paper
    (manifest,) = (tmp_path / "cache").rglob("manifest.json")
    info = json.loads(manifest.read_text())
    assert info["engine"] == "diffusion" and info["prompt"] == "a cup of coffee"
    # The engine's options as a form: what differs from the defaults goes with the job.
    assert {"mode", "size", "frames", "lora", "memory"} <= set(seen["options_shown"])
    chosen = {"size": 32, "frames": 8, "sampling_steps": 3, "guidance": 5.5}
    assert seen["options_chosen"] == chosen and chosen.items() <= info["options"].items()

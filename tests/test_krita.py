"""The plugin's Krita-touching code inside a real Krita 5 (kritarunner under Xvfb).

Needs `krita` and `xvfb-run` (Debian: apt-get install krita python3-pyqt5 xvfb xauth; .ci/run
installs them). Without them the tests are skipped, unless PAINTSTEP_REQUIRE_KRITA is set, as
in CI, where a missing Krita fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "krita"))

import plugin_setup  # noqa: E402

HAVE_KRITA = bool(shutil.which("kritarunner") and shutil.which("xvfb-run"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("krita_layers"),  # one Krita run for the module, on one worker
    pytest.mark.skipif(
        not HAVE_KRITA and not os.environ.get("PAINTSTEP_REQUIRE_KRITA"),
        reason="Krita (kritarunner) and xvfb-run are not installed",
    ),
]


def display_number() -> str:
    """Where xvfb-run starts looking for a free display: random, so that runs started at the
    same moment (other tests, other sessions) do not race for the same one."""
    import random

    return str(random.randint(100, 30000))


def in_krita(
    function: str, tmp: Path, tries: int = 1, resources: Path | None = None, **env: str
) -> dict:
    """Run tests/krita/krita_checks.FUNCTION inside Krita, with a fresh HOME (holding Krita's
    `resources` folder when given: see plugin_setup.resources) and `env`; its results.
    A check that marks where it calls into Krita ("inside") and dies there is run again, up to
    `tries` times, and then failed as Krita's crash."""
    for attempt in range(1, tries + 1):
        seen = run_in_krita(function, tmp / f"try{attempt}", resources, **env)
        inside = seen.pop("inside", None)
        if inside is None:
            return seen
    pytest.fail(
        f"Krita crashed inside {inside} {tries} times in a row: Krita 5.1's own crash (in its "
        "timeline, seen under load), not in Paintstep's code."
    )


def run_in_krita(function: str, tmp: Path, resources: Path | None = None, **more: str) -> dict:
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    plugin_setup.add_resources(home, resources, "kritarunner")
    result = tmp / f"{function}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_QPA")}  # Krita needs xcb
    env.update(
        HOME=str(home),
        PAINTSTEP_RESULT=str(result),
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "krita"), str(ROOT / "krita_plugin")]),
        **more,
    )
    done = subprocess.run(
        [
            "xvfb-run",
            "-a",
            "-n",
            display_number(),
            "kritarunner",
            "-s",
            "krita_checks",
            "-f",
            function,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.exists(), f"Krita wrote no result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    seen = json.loads(result.read_text())
    assert "error" not in seen, seen["error"]
    return seen


@pytest.fixture(scope="module")
def layers(tmp_path_factory, krita_resources):
    return in_krita("layers", tmp_path_factory.mktemp("krita"), resources=krita_resources)


def test_the_qt_shim_picks_pyqt5_in_krita_5(layers):
    assert layers["qt"] == [5, "PyQt5.QtWidgets"]


def test_the_canvas_is_read_as_straight_rgba(layers):
    assert layers["size"] == [64, 48]
    assert layers["pixel_0_0"] == [200, 100, 50, 255]
    assert layers["pixel_16_8"] == [10, 20, 30, 255]


def test_a_box_of_the_canvas_is_read_with_transparency_past_its_edge(layers):
    assert layers["box"] == [14, 7, 60, 2, 60 * 2 * 4]
    assert layers["box_pixels"] == [[10, 20, 30, 255], [0, 0, 0, 0]]  # (16, 8); (73, 7)
    # A document never saved is known by its name; its size is Krita's.
    assert layers["document"] == ["checks", "checks", [64, 48]]


def test_the_selection_gives_its_box_and_mask(layers):
    assert layers["selection"] == [10, 6, 20, 12, 240]
    assert layers["selection_pixel"] == [10, 20, 30, 255]


def test_a_layer_is_read_as_a_target_in_the_canvas_box(layers):
    assert layers["paint_layers"][:2] == ["reference", "base"]
    assert layers["target"] == [20 * 12 * 4, 1, 2, 3, 40]  # hidden, still its own pixels


def test_steps_go_in_as_a_group_of_layers_first_at_the_bottom(layers):
    assert layers["group"] == "Paintstep 1" and layers["group_type"] == "grouplayer"
    top = layers["top_level"]
    assert top.index("Paintstep 1") > top.index("base")
    assert layers["children"] == ["Step 1", "Step 2", "Step 3"]
    assert layers["step1_pixel"] == [255, 0, 0, 255]  # placed at the offset (30, 20)
    assert layers["step1_outside"] == [0, 0, 0, 0]
    assert layers["step2_pixel"] == [0, 255, 0, 128]
    assert layers["composited"] == [127, 128, 0, 255]  # normal blending, as Paintstep's


def test_the_layers_survive_saving_and_reopening_the_kra(layers):
    assert layers["saved"]
    assert layers["reloaded_children"] == ["Step 1", "Step 2", "Step 3"]
    assert layers["reloaded_step2"] == [0, 255, 0, 128]


def test_sixteen_bit_and_gray_documents_are_converted_and_float_is_refused(layers):
    assert layers["u16_pixel"] == [192, 128, 64, 255]
    assert layers["gray_pixel"] == [90, 90, 90, 255]
    assert "Convert Image Color Space" in layers["float"]
    assert layers["gray_step"] == [70, 200]  # steps go into a gray document as gray
    assert "Convert Image Color Space" in layers["cmyk"] and layers["cmyk_untouched"]


def test_steps_go_in_as_animation_frames(tmp_path, krita_resources):
    seen = in_krita("frames", tmp_path, tries=2, resources=krita_resources)
    assert seen["name"] == "Paintstep frames" and seen["animated"]
    assert seen["frames"] == [[0, 0, 255, 255], [0, 255, 0, 255], [255, 0, 0, 255]]  # BGRA


def test_an_illustration_job_goes_in_as_a_sub_group_per_stage(tmp_path, krita_resources):
    import numpy as np
    from conftest import photo
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest, frames

    picture = photo("coffee", 96)
    request = PaintRequest(picture, steps=8, options={"style": "illustration"})
    steps = list(get_engine("strokes").paint(request, threading.Event(), lambda *_: None))
    listed = []
    for step in steps:
        path = tmp_path / f"step{step.index}.rgba"
        path.write_bytes(step.pixels.tobytes())
        box = {"x": step.x, "y": step.y, "width": step.width, "height": step.height}
        listed.append({"index": step.index, "stage": step.stage, "file": str(path), **box})
    job = tmp_path / "steps.json"
    height, width = picture.shape[:2]
    job.write_text(json.dumps({"width": width, "height": height, "steps": listed}))
    seen = in_krita("stage_groups", tmp_path, resources=krita_resources, PAINTSTEP_STEPS=str(job))
    runs: list = []  # the sub-groups the stages make: the illustrator's order, named for each
    for step in steps:
        name = step.stage.capitalize()
        if not runs or runs[-1][0] != name:
            runs.append([name, []])
        runs[-1][1].append(f"Step {step.index}")
    assert [name for name, _ in runs] == [
        "Sketch",
        "Lines",
        "Flats",
        "Shading",
        "Details",
        "Finish",
    ]
    assert seen["tree"][-2:] == ["paper", ["Paintstep job 1-8", runs]]  # above the current
    assert seen["types"] == ["grouplayer"] * 6
    assert seen["saved"] and seen["reloaded_tree"] == seen["tree"] and seen["reloaded_same"]
    # Krita's flattened image is the process's last frame (over white paper).
    (flattened,) = tmp_path.glob("try1/flattened.rgba")
    shown = np.frombuffer(flattened.read_bytes(), np.uint8).reshape(picture.shape)
    last = list(frames(np.full_like(picture, 255), steps))[-1]
    assert int(np.abs(shown.astype(int) - last).max()) <= 2

"""The docker's logic without Krita: the real docker code on a fake Krita module
(tests/fake_krita/krita.py), with PyQt6 as Krita 6 would load it, against a real server.

Each scenario runs in a process of its own (tests/fake_krita/drive.py): in pytest's process,
PyQt6 would run on whichever Qt libraries loaded first, PySide6's once the viewer's tests ran.
The Krita-touching code itself is tested in a real Krita (test_krita.py, test_krita_docker.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import photo
from paintstep.model.illustration import STAGES
from paintstep.process import StepLayer, frames
from test_server import ServerProcess, free_port

DRIVER = Path(__file__).resolve().parent / "fake_krita" / "drive.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("PyQt6") is None, reason="PyQt6 (the dev extra) is not installed"
)


@pytest.fixture
def server(tmp_path):
    running = ServerProcess(tmp_path).start()
    yield running
    running.stop()


def drive(tmp_path: Path, scenario: str, picture: np.ndarray, address: str, **spec):
    """Run a scenario of drive.py; what the docker did (result, arrays)."""
    out = tmp_path / scenario
    out.mkdir()
    np.save(out / "picture.npy", picture)
    for name in ("target", "mask"):
        if name in spec:
            np.save(out / f"{name}.npy", spec[name])
            spec[name] = str(out / f"{name}.npy")
    spec.update(scenario=scenario, out=str(out), picture=str(out / "picture.npy"))
    (out / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, HOME=str(tmp_path / "home"), PAINTSTEP_SERVER=address)
    env.update(XDG_DATA_HOME=str(tmp_path / "home" / "data"), QT_QPA_PLATFORM="offscreen")
    env.pop("PAINTSTEP_SERVE_COMMAND", None)
    run = subprocess.run(
        [sys.executable, str(DRIVER), str(out / "spec.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert (out / "result.json").exists(), run.stdout + run.stderr
    result = json.loads((out / "result.json").read_text())
    assert "error" not in result, result["error"]
    with np.load(out / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    return result, arrays


def steps_of(result: dict, arrays: dict, name: str = "step") -> list[StepLayer]:
    boxes = result[f"{name}_boxes"]
    return [StepLayer(k + 1, x, y, arrays[f"{name}{k + 1}"]) for k, (x, y) in enumerate(boxes)]


def placed(step: StepLayer, shape, offset=(0, 0)) -> np.ndarray:
    """A step's pixels on a document-sized transparent layer."""
    whole = np.zeros(shape, np.uint8)
    x, y = step.x + offset[0], step.y + offset[1]
    whole[y : y + step.height, x : x + step.width] = step.pixels
    return whole


def stage_runs(stages: list, first: int, last: int) -> list:
    """What a group applied from steps first..last should hold: (sub-group, its layers) for
    each run of a stage, in process order."""
    runs: list = []
    for index in range(first, last + 1):
        name = stages[index - 1][:1].upper() + stages[index - 1][1:]
        if not runs or runs[-1][0] != name:
            runs.append((name, []))
        runs[-1][1].append(f"Step {index}")
    return runs


def by_stage(group: dict) -> list:
    """A group of the layer tree as (sub-group, its layers' names), bottom first."""
    assert all(child["type"] == "grouplayer" for child in group["children"]), group
    return [
        (child["name"], [layer["name"] for layer in child["children"]])
        for child in group["children"]
    ]


def close(a: np.ndarray, b: np.ndarray, levels: int = 2) -> bool:
    """Equal to Qt's 8-bit compositing rounding."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= levels


def test_steps_arrive_scrub_in_place_and_apply_as_a_group(tmp_path, server):
    picture = photo("astronaut", 96)
    result, arrays = drive(
        tmp_path, "generate_scrub_apply", picture, server.address, steps=6, scrub=[6, 1, 3, 6, 2]
    )
    assert result["binding"] == "PyQt6.QtWidgets"  # the shim chose what Krita 6 reports
    assert result["connected"] and "strokes" in result["engines"]
    assert result["running_after_click"] and result["finished"], result["message"]
    assert result["strip"] == 6 and result["slider"] == [0, 6, 6] and result["apply_enabled"]
    steps = steps_of(result, arrays)
    # Without a target the process starts on white paper and paints the picture.
    expected = list(frames(np.full_like(picture, 255), steps))
    # Scrubbing shows frame k at full size in a locked layer on top; the active layer stays.
    assert result["active_while_scrubbing"] == "picture"
    for k, shown, preview in zip([6, 1, 3, 6, 2], arrays["previews"], result["preview_layers"]):
        assert preview == ["Paintstep preview", True]
        assert close(shown, expected[k - 1]), f"frame {k} is not what the canvas shows"
    # Letting go of the slider takes the preview away: the artist's document is as it was.
    assert [node["name"] for node in result["after_scrub"]] == ["picture"]
    assert np.array_equal(arrays["projection_after_scrub"], picture)
    # Apply k: one layer; apply all: one layer per step, first at the bottom, each exact, in
    # a sub-group per stage of the painterly process.
    assert result["one_group"].endswith(" 2")
    assert np.array_equal(arrays["one_Step 2"], placed(steps[1], picture.shape))
    assert result["all_group"].endswith(" 1-6") and result["all_parent_is_root"]
    assert result["all_buttons_off_while_applying"]
    group = next(node for node in result["tree"] if node["name"] == result["all_group"])
    assert result["step_stages"][0] == "lay-in" and result["step_stages"][-1] == "finish"
    assert by_stage(group) == stage_runs(result["step_stages"], 1, 6)
    for step in steps:
        assert np.array_equal(arrays[f"all_Step {step.index}"], placed(step, picture.shape))
    # The groups go above the layer that was current, the picture.
    assert result["tree"][0]["name"] == "picture" and len(result["tree"]) == 3


def test_a_style_from_the_options_form_is_applied_in_a_sub_group_per_stage(tmp_path, server):
    picture = photo("coffee", 96)
    applying = [[1, 8, "all"], [2, 4, "range"], [3, 3, "one"]]
    result, arrays = drive(
        tmp_path,
        "stage_groups",
        picture,
        server.address,
        steps=8,
        style="illustration",
        apply=applying,
    )
    # The form is built from the engine's option registry, so the styles are offered.
    assert "style" in result["options_shown"] and result["style_default"] == "paint"
    assert {"paint", "illustration"} <= set(result["style_choices"])
    assert result["options_chosen"] == {"style": "illustration"}
    assert result["finished"], result["message"]
    stages = result["step_stages"]
    assert stages == sorted(stages, key=STAGES.index)  # the illustrator's order
    assert set(stages) == set(STAGES)  # eight steps reach every stage
    assert result["strip_labels"][:2] == ["1 sketch", "2 lines"]  # the strip names the stage
    groups = {node["name"]: node for node in result["tree"][1:]}
    # Each goes just above the layer that was current: the latest lowest.
    assert list(groups) == [result[f"{key}_group"] for _, _, key in reversed(applying)]
    for first, last, key in applying:
        assert by_stage(groups[result[f"{key}_group"]]) == stage_runs(stages, first, last)
    assert [name for name, _ in by_stage(groups[result["all_group"]])] == [
        "Sketch",
        "Lines",
        "Flats",
        "Shading",
        "Details",
        "Finish",
    ]
    steps = steps_of(result, arrays)
    for step in steps:
        assert np.array_equal(arrays[f"all_Step {step.index}"], placed(step, picture.shape))
    # The stage groups alone, over white paper, show the last frame.
    last = list(frames(np.full_like(picture, 255), steps))[-1]
    assert result["picture_below"] == "picture" and close(arrays["all_rebuilt"], last)


def test_a_selection_with_a_layer_as_target_paints_only_there(tmp_path, server):
    picture = photo("astronaut", 96)
    target = photo("coffee", 144)[:96, :96]  # the same size as the picture
    x, y, width, height = 20, 8, 48, 40
    rows, cols = np.mgrid[:height, :width]
    mask = (((cols - width / 2) / (width / 2)) ** 2 + ((rows - height / 2) / (height / 2)) ** 2) < 1
    result, arrays = drive(
        tmp_path,
        "selection_and_target",
        picture,
        server.address,
        steps=5,
        box=[x, y],
        target=target,
        mask=mask.astype(np.uint8) * 255,
    )
    assert result["target_choice"] == "Layer: target"
    assert result["finished"], result["message"]
    assert result["canvas_box"] == [x, y, width, height]
    after = arrays["projection_after_apply"]
    inside = np.zeros(picture.shape[:2], bool)
    inside[y : y + height, x : x + width] = mask
    # Outside the selection nothing changed; inside, the process ended on the target layer.
    assert np.array_equal(after[~inside], picture[~inside])
    assert np.abs(after[inside].astype(int) - target[inside]).mean() < 3
    for name, layer in arrays.items():
        if name.startswith("all_Step"):
            assert not layer[..., 3][~inside].any(), f"{name} paints outside the selection"


def test_a_float_document_is_refused_with_what_to_do_and_nothing_is_sent(tmp_path, server):
    result, _ = drive(
        tmp_path, "refused_document", photo("astronaut", 32), server.address, depth="F32"
    )
    assert "Convert Image Color Space" in result["message"]
    assert not result["running"] and result["button"] == "Generate"


def test_settings_are_kept_in_kritas_settings_for_the_next_docker(tmp_path, server):
    result, _ = drive(
        tmp_path, "settings_persist", photo("astronaut", 32), server.address, typed=server.address
    )
    assert result["connected_again"]
    assert result["stored"]["steps"] == "7" and result["stored"]["seed"] == "1234"
    assert result["stored"]["server"] == server.address
    assert result["new_docker"] == [7, 1234, server.address]


def test_with_no_server_and_none_installed_the_docker_says_what_to_do(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    result, _ = drive(tmp_path, "no_server", photo("astronaut", 32), address)
    assert "install.py" in result["label"] and "paintstep serve" in result["label"]
    assert result["button"] == "Generate" and result["message"]


def test_a_plugin_without_its_vendored_client_says_how_to_install_it(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    result, _ = drive(tmp_path, "no_client", photo("astronaut", 32), address)
    assert "install.py" in result["label"] and "vendor" in result["label"]
    assert "install.py" in result["message"] and not result["running"]
    assert "install.py" in result["after_connect"]


def test_a_server_that_dies_mid_job_is_reported_and_the_steps_so_far_stay(tmp_path, server):
    result, _ = drive(
        tmp_path,
        "server_dies",
        photo("astronaut", 1024),
        server.address,
        steps=64,
        server_pid=server.process.pid,
    )
    assert result["got_a_step"] and result["stopped"]
    assert "server" in result["message"].lower()
    assert result["button"] == "Generate" and result["steps_kept"] >= 1


def test_cancel_stops_the_job_and_keeps_the_steps_so_far(tmp_path, server):
    result, _ = drive(tmp_path, "cancel_midway", photo("astronaut", 1024), server.address, steps=64)
    assert result["got_a_step"] and result["button_while_running"] == "Cancel"
    assert result["stopped"] and "cancelled" in result["message"]
    assert 1 <= result["steps_kept"] < 64
    assert result["button"] == "Generate" and result["apply_enabled"]


def test_earlier_results_of_the_document_come_back_from_the_server(tmp_path, server):
    result, arrays = drive(
        tmp_path, "earlier_results", photo("astronaut", 64), server.address, steps=4
    )
    assert len(result["history"]) == 1 and "4 steps (finished)" in result["history"][0]
    assert result["fetched"]
    first, again = steps_of(result, arrays, "first"), steps_of(result, arrays, "again")
    assert [(s.x, s.y) for s in first] == [(s.x, s.y) for s in again]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(first, again))


def test_steps_go_in_as_animation_frames_one_per_step(tmp_path, server):
    picture = photo("astronaut", 64)
    result, arrays = drive(tmp_path, "as_frames", picture, server.address, steps=4)
    assert result["files"] == 4 and result["first_frame"] == 1
    assert result["layer"].endswith(" frames")
    expected = list(frames(np.full_like(picture, 255), steps_of(result, arrays)))
    for k in range(1, 5):
        assert close(arrays[f"frame{k}"], expected[k - 1]), f"frame {k}"

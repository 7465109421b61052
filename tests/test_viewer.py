"""`paintstep view` offscreen: open, scrub, play, show one step, export, bad folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import painted, photo
from PIL import Image

QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from paintstep.engines import get_engine  # noqa: E402
from paintstep.process import PaintRequest  # noqa: E402
from paintstep.result import ResultWriter, load_result  # noqa: E402
from paintstep.viewer import CACHED_FRAMES, open_folder  # noqa: E402
from PySide6 import QtCore, QtGui  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app():
    # Offscreen for this process only: Krita, started by other tests, needs a real X display.
    before = os.environ.get("QT_QPA_PLATFORM")
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    application = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    if before is None:
        del os.environ["QT_QPA_PLATFORM"]
    else:
        os.environ["QT_QPA_PLATFORM"] = before
    return application


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return painted(tmp_path_factory.mktemp("viewer"), "coffee", 240, 8)


def shown(window) -> np.ndarray:
    image = window.view.item.pixmap().toImage().convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width()].copy()


def press(window, key) -> None:
    event = QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, key, QtCore.Qt.KeyboardModifier.NoModifier)
    window.keyPressEvent(event)


def test_opens_on_the_finished_picture_and_scrubs_by_key_and_wheel(app, folder):
    result = load_result(folder)
    window = open_folder(folder)
    window.show()
    app.processEvents()
    assert window.slider.maximum() == 8 and window.slider.value() == 8
    assert np.array_equal(shown(window), result.frame(8))
    assert window.strip.count() == 8
    press(window, QtCore.Qt.Key.Key_Home)
    assert window.slider.value() == 0 and np.array_equal(shown(window), result.frame(0))
    press(window, QtCore.Qt.Key.Key_Right)
    press(window, QtCore.Qt.Key.Key_Right)
    assert window.slider.value() == 2 and np.array_equal(shown(window), result.frame(2))
    window.view.scrubbed.emit(1)
    assert window.slider.value() == 3
    assert window.position.text() == f"step 3 / 8 ({result.steps[2]['stage']})"
    press(window, QtCore.Qt.Key.Key_End)
    assert window.slider.value() == 8
    before = window.view.transform().m11()
    press(window, QtCore.Qt.Key.Key_Plus)
    assert window.view.transform().m11() > before
    if os.environ.get("PAINTSTEP_UPDATE_SCREENSHOT"):
        window.go(4)
        app.processEvents()
        window.grab().save(str(ROOT / "docs" / "viewer.png"))
    window.close()


def test_the_slider_says_each_steps_stage(app, tmp_path):
    window = open_folder(painted(tmp_path, "coffee", 96, 8, "--option", "style=illustration"))
    window.go(1)
    assert window.position.text() == "step 1 / 8 (sketch)"
    window.go(8)
    assert window.position.text() == "step 8 / 8 (finish)"
    window.go(0)
    assert window.position.text() == "start / 8"
    window.close()


def test_arrow_keys_scrub_when_the_picture_has_focus(app, folder):
    window = open_folder(folder)
    window.show()
    window.view.zoom(4)  # scroll bars: a graphics view would scroll with the arrows
    window.view.setFocus()
    app.processEvents()
    for key in (QtCore.Qt.Key.Key_Home, QtCore.Qt.Key.Key_Right, QtCore.Qt.Key.Key_Right):
        event = QtGui.QKeyEvent(
            QtCore.QEvent.Type.KeyPress, key, QtCore.Qt.KeyboardModifier.NoModifier
        )
        QtWidgets.QApplication.sendEvent(window.view, event)
    assert window.slider.value() == 2
    window.close()


def test_playing_runs_through_the_steps_and_stops_at_the_end(app, folder):
    window = open_folder(folder)
    window.speed.setValue(30)
    press(window, QtCore.Qt.Key.Key_Space)
    assert window.timer.isActive() and window.slider.value() == 0
    for _ in range(9):
        window.advance()
    assert window.slider.value() == 8 and not window.timer.isActive()
    assert window.play_button.text() == "Play"
    window.close()


def test_only_this_step_shows_its_paint_over_a_checkerboard(app, folder):
    result = load_result(folder)
    window = open_folder(folder)
    window.go(5)
    window.only.setChecked(True)
    picture = shown(window)
    layer = result.layer(5)
    painted = layer.pixels[..., 3] == 255
    ys, xs = np.nonzero(painted)
    assert np.array_equal(picture[ys[0] + layer.y, xs[0] + layer.x], layer.pixels[ys[0], xs[0]])
    untouched = np.ones(picture.shape[:2], bool)
    untouched[layer.y : layer.y + layer.height, layer.x : layer.x + layer.width] = False
    assert set(np.unique(picture[untouched][:, 0])) <= {204, 255}
    window.close()


def test_a_lean_folder_opens_on_its_last_frame_and_keeps_checkpoints_it_lacks(
    app, tmp_path, monkeypatch
):
    # The server's cache keeps frame 0 and the last: a 4096 px, 64-step folder opened in 9.9 s
    # (every layer composited for the last frame), and every frame before it was as far away.
    from paintstep.result import CHECKPOINT_STEPS

    steps = 2 * CHECKPOINT_STEPS + 3
    request = PaintRequest(photo("astronaut", 128), steps=steps)
    writer = ResultWriter(
        tmp_path / "lean", request.first_frame(), {"steps_planned": steps}, lean=True
    )
    for step in get_engine("strokes").paint(request):
        writer.add(step)
    writer.finish()
    result = load_result(tmp_path / "lean")
    result_class = type(result)
    layers_read = []
    original = result_class.layer
    monkeypatch.setattr(
        result_class, "layer", lambda self, k: layers_read.append(k) or original(self, k)
    )
    window = open_folder(tmp_path / "lean")
    window.show()
    assert np.array_equal(shown(window), result.frame(steps))
    checkpoints = [CHECKPOINT_STEPS, 2 * CHECKPOINT_STEPS]
    assert wait_for(app, lambda: sorted(window.process.kept) == checkpoints)
    window.process.walker.thread.join()
    layers_read.clear()
    window.go(2 * CHECKPOINT_STEPS - 1)
    assert layers_read == list(range(CHECKPOINT_STEPS + 1, 2 * CHECKPOINT_STEPS))
    for k in (steps, 3, 2 * CHECKPOINT_STEPS + 1, 7, CHECKPOINT_STEPS, 1, 2, 0):
        window.go(k)
        assert np.array_equal(shown(window), result.frame(k))
    assert len(window.process.cache) <= CACHED_FRAMES
    window.close()


def test_the_last_frame_of_a_folder_without_frames_starts_from_its_nearest_checkpoint(
    app, tmp_path, monkeypatch
):
    # A 4096 px, 64-step folder written with thumbnails only opened in 9.9 s: its last frame
    # was composited from frame 0 through every layer instead of from the checkpoint.
    from paintstep.result import CHECKPOINT_STEPS

    request = PaintRequest(photo("astronaut", 96), steps=2 * CHECKPOINT_STEPS + 3, seed=1)
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, outputs=("thumbs",))
    for step in get_engine("strokes").paint(request):
        writer.add(step)
    writer.finish()
    layers_read = []
    result_class = type(load_result(tmp_path / "o"))
    original = result_class.layer
    monkeypatch.setattr(
        result_class, "layer", lambda self, k: layers_read.append(k) or original(self, k)
    )
    window = open_folder(tmp_path / "o")
    layers_read.clear()
    window.go(request.steps - 1)
    assert len(layers_read) < CHECKPOINT_STEPS
    assert np.array_equal(shown(window), load_result(tmp_path / "o").frame(request.steps - 1))
    window.close()


def test_a_folder_without_thumbnails_opens_on_its_last_frame_and_builds_them_meanwhile(
    app, tmp_path
):
    # `--outputs none` at 4096 px, 64 steps: the window made every thumbnail from a frame
    # before it opened (minutes); now it opens on the last frame, written, and the strip fills.
    from paintstep.process import thumbnail

    request = PaintRequest(photo("astronaut", 96), steps=12, seed=2)
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, outputs=())
    for step in get_engine("strokes").paint(request):
        writer.add(step)
    writer.finish()
    result = load_result(tmp_path / "o")
    window = open_folder(tmp_path / "o")
    window.show()
    assert window.slider.value() == 12 and window.strip.count() == 12
    assert np.array_equal(shown(window), result.frame(12))
    assert wait_for(app, lambda: all(t is not None for t in window.process.thumbnails))
    for k in (1, 7, 12):
        built = window.process.thumbnails[k - 1].astype(int)
        assert np.abs(built - thumbnail(result.frame(k))).max() <= 1
        assert not window.strip.item(k - 1).icon().isNull()
    window.close()


def test_a_step_that_paints_nothing_shows_the_frame_before_it(app, tmp_path):
    # Such a step lists no layer file (there is none); the viewer builds its frame all the same.
    from paintstep.process import StepLayer

    request = PaintRequest(photo("astronaut", 64), steps=4, seed=2)
    steps = list(get_engine("strokes").paint(request))
    nothing = StepLayer(3, 0, 0, np.zeros((0, 0, 4), np.uint8), steps[1].thumbnail, "shapes")
    later = [replace(step, index=step.index + 1) for step in steps[2:]]
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, outputs=())
    for step in [*steps[:2], nothing, *later]:
        writer.add(step)
    writer.finish()
    result = load_result(tmp_path / "o")
    assert "layer" not in result.steps[2]
    window = open_folder(tmp_path / "o")
    window.show()
    assert wait_for(app, lambda: all(t is not None for t in window.process.thumbnails))
    window.go(3)
    app.processEvents()
    assert np.array_equal(shown(window), result.frame(2))
    assert window.position.text() == "step 3 / 5 (shapes)"
    window.close()


def test_half_written_and_foreign_folders_are_said_in_the_window(app, folder, tmp_path):
    half = tmp_path / "half"
    shutil.copytree(folder, half)
    manifest = json.loads((half / "manifest.json").read_text())
    manifest["steps"] = manifest["steps"][:3]
    manifest["complete"], manifest["state"] = False, "running"
    (half / "manifest.json").write_text(json.dumps(manifest))
    window = open_folder(half)
    assert window.slider.maximum() == 3
    assert "not complete (3 of 8 steps, running)" in window.message.text()
    window.close()
    (tmp_path / "other").mkdir()
    window = open_folder(tmp_path / "other")
    assert "not a Paintstep result" in window.message.text()
    assert window.slider.maximum() == 0
    window.close()


def test_exports_from_the_window(app, folder, tmp_path, monkeypatch):
    window = open_folder(folder)
    from paintstep.exports import export_animation, write_ora

    save = QtWidgets.QFileDialog
    monkeypatch.setattr(save, "getSaveFileName", lambda *a, **k: (str(tmp_path / "a.gif"), ""))
    window.exports.first.setValue(2)
    window.exports.last.setValue(6)
    window.exports.ask_animation()
    assert "Wrote" in window.message.text()
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 5  # frames 2..6
    assert window.exports.sheet_frames.text().startswith("0, 1, ")
    window.exports.sheet_frames.setText("0, 2-4, 8")
    assert window.exports.chosen_frames() == [0, 2, 3, 4, 8]
    monkeypatch.setattr(save, "getSaveFileName", lambda *a, **k: (str(tmp_path / "s.png"), ""))
    window.exports.ask_contact_sheet()
    with Image.open(tmp_path / "s.png") as sheet:
        assert sheet.size == (4 * 328 + 8, 2 * (213 + 30) + 8)  # 5 frames: 2 rows of 4
    window.exports.sheet_frames.setText("0, x")
    window.exports.ask_contact_sheet()
    assert "Write the sheet's frames as" in window.message.text()
    window.exports.run_export(lambda: write_ora(window.process.result, tmp_path / "p.ora"))
    assert (tmp_path / "p.ora").stat().st_size > 1000
    window.exports.run_export(
        lambda: export_animation(window.process.result, 0, 99, tmp_path / "b.gif")
    )
    assert "Could not export" in window.message.text()
    window.close()


def test_the_animation_export_takes_the_whole_process_by_default(
    app, folder, tmp_path, monkeypatch
):
    window = open_folder(folder)
    assert (window.exports.first.value(), window.exports.last.value()) == (0, 8)
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "all.gif"), "")
    )
    window.exports.ask_animation()
    with Image.open(tmp_path / "all.gif") as gif:
        assert gif.n_frames == 9  # frames 0..8
    window.close()


def test_export_dialogs_open_in_the_result_folder(app, folder, tmp_path, monkeypatch):
    window = open_folder(folder)
    asked = []
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", lambda *a: asked.append(a[2]) or ("", "")
    )
    window.exports.ask_animation()
    window.exports.ask_contact_sheet()
    window.exports.ask_ora()
    assert [Path(where).parent for where in asked] == [folder] * 3
    assert Path(asked[0]).name == "frames_0-8.gif"
    window.close()


def test_without_a_display_it_says_so_and_exits_2(folder):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    done = subprocess.run(
        [sys.executable, "-m", "paintstep", "view", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "needs a display" in done.stderr and "xvfb-run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def wait_for(app, condition, seconds: float = 60) -> bool:
    """Run Qt's events until `condition()` holds or `seconds` pass; whether it holds."""
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    app.processEvents()
    return condition()


def test_follows_a_live_job_on_a_server(app, tmp_path):
    from paintstep.process import composite
    from paintstep.viewer import follow
    from paintstep.wire.client import Client
    from test_server import ServerProcess

    server = ServerProcess(tmp_path).start()
    try:
        early = follow(server.address)  # opened before the server had a job
        assert early.jobs.count() == 0 and "no jobs yet" in early.message.text()
        request = PaintRequest(photo("chelsea", 160), steps=30, seed=4)
        with Client(server.address) as client:
            events = client.generate_request(request)
            job = next(events).job
            window = follow(server.address, job)
            assert wait_for(app, lambda: "30 steps, finished" in window.process.note)
            list(events)
        assert window.process.count == 30
        final = request.first_frame()
        for layer in get_engine("strokes").paint(request):
            composite(final, layer)
        window.go(30)
        assert np.array_equal(shown(window), final)
        assert "30 steps, finished" in window.message.text()
        window.close()
        # The early window lists the job that came, follows it, and its label is the server's now.
        assert wait_for(app, lambda: "30/30 steps (finished)" in early.jobs.itemText(0))
        assert early.jobs.count() == 1 and wait_for(app, lambda: early.process.count == 30)
        with Client(server.address) as client:
            list(client.generate_request(PaintRequest(photo("coffee", 96), steps=4), name="new"))
        assert wait_for(app, lambda: early.jobs.itemText(0) == "new: 4/4 steps (finished)")
        assert early.jobs.count() == 2 and "30/30 steps" in early.jobs.itemText(1)
        assert wait_for(app, lambda: early.process.count == 4)  # the newest, as none was chosen
        early.jobs.setCurrentIndex(1)  # chosen: it stays on that job as others come
        assert wait_for(app, lambda: early.process.count == 30)
        early.close()
        listed = follow(server.address)
        assert listed.jobs.count() == 2 and listed.jobs.currentIndex() == 0
        listed.close()
    finally:
        server.stop()

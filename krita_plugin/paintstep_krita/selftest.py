"""A self-test of the docker in Krita's full GUI, for the tests (PAINTSTEP_SELFTEST=result.json).

Once Krita's window is up it opens a document with the picture PAINTSTEP_SELFTEST_PICTURE,
drives the docker (generate against PAINTSTEP_SERVER, scrub, apply all), writes what it saw to
the result file, saves a screenshot to PAINTSTEP_SELFTEST_SCREENSHOT and quits Krita.
"""

from __future__ import annotations

import json
import os
import time
import traceback

from krita import Krita

from . import document
from .docker import PaintstepDocker
from .qt import QtCore, QtGui

result: dict = {}
state: dict = {}


def arm() -> None:
    Krita.instance().notifier().windowCreated.connect(
        lambda: QtCore.QTimer.singleShot(2000, guarded(start))
    )


def guarded(step):
    def run() -> None:
        try:
            step()
        except Exception:
            result["error"] = traceback.format_exc()
            finish()

    return run


def start() -> None:
    from .vendor import client_module

    client_module()
    import msgpack
    import zmq

    result["zmq"], result["msgpack"] = zmq.__file__, msgpack.__file__
    app = Krita.instance()
    window = app.activeWindow()
    window.qwindow().showMaximized()
    picture = QtGui.QImage(os.environ["PAINTSTEP_SELFTEST_PICTURE"]).convertToFormat(
        QtGui.QImage.Format.Format_ARGB32
    )
    width, height = picture.width(), picture.height()
    doc = app.createDocument(width, height, "selftest", "RGBA", "U8", "", 300.0)
    layer = doc.createNode("picture", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    bits = picture.constBits()
    bits.setsize(picture.sizeInBytes())
    layer.setPixelData(bytes(bits), 0, 0, width, height)  # ARGB32 is B, G, R, A in memory
    window.addView(doc)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    state["doc"], state["picture"] = doc, document.read_canvas(doc)
    docker = PaintstepDocker.instances[-1] if PaintstepDocker.instances else None
    result["docker_found"] = docker is not None
    if docker is None:
        finish()
        return
    docker.setVisible(True)
    docker.raise_()
    state["docker"] = docker
    docker.step_count.setValue(int(os.environ.get("PAINTSTEP_SELFTEST_STEPS", "6")))
    state["deadline"] = time.monotonic() + 90
    QtCore.QTimer.singleShot(500, guarded(generate))


class Stopwatch:
    """How long Krita's event loop goes without turning: a timer that should tick every 10 ms."""

    def __init__(self) -> None:
        self.timer = QtCore.QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)
        self.last = time.monotonic()
        self.longest = 0.0
        self.freezes: list = []

    def tick(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        if now - self.last >= 0.2:
            self.freezes.append((self.last, now - self.last))  # when it began, how long
        self.last = now

    def start(self) -> None:
        self.last = time.monotonic()
        self.timer.start()


def generate() -> None:
    docker = state["docker"]
    if "Connected" not in docker.server_label.text() and time.monotonic() < state["deadline"]:
        QtCore.QTimer.singleShot(250, guarded(generate))  # the server may still be starting
        return
    if "reconnected" not in state and not os.environ.get("PAINTSTEP_SELFTEST_MEASURE_ONLY"):
        # The address typed in the docker: kept in Krita's settings, and connected to.
        state["reconnected"] = True
        docker.address_edit.setText(os.environ["PAINTSTEP_SERVER"])
        docker.connect_button.click()
        result["saved_server"] = Krita.instance().readSetting("paintstep", "server", "")
        QtCore.QTimer.singleShot(250, guarded(generate))
        return
    engine = os.environ.get("PAINTSTEP_SELFTEST_ENGINE")
    if engine:
        # Another engine, finishing the canvas itself, with a prompt and options.
        docker.engine.setCurrentText(engine)
        result["engine"] = docker.engine.currentText()
        result["prompt_enabled"] = docker.prompt.isEnabled()
        box = docker.target_box
        result["target_choices"] = [box.itemText(i) for i in range(box.count())]
        box.setCurrentIndex(box.findText(box.COMPLETE))
        docker.prompt.setText(os.environ.get("PAINTSTEP_SELFTEST_PROMPT", ""))
    if "PAINTSTEP_SELFTEST_OPTIONS" in os.environ:
        docker.options_button.setChecked(True)
        form = docker.options_form
        result["options_shown"] = list(form.widgets)
        style = form.widgets.get("style")
        if style is not None:
            result["style_choices"] = [style.itemText(i) for i in range(style.count())]
        for name, value in json.loads(os.environ["PAINTSTEP_SELFTEST_OPTIONS"]).items():
            form.set_value(name, value)  # typed into the form, as an artist would
        result["options_chosen"] = form.chosen()
    result["server_before"] = docker.server_label.text()
    state["stopwatch"] = Stopwatch()
    state["stopwatch"].start()
    state["began"] = time.monotonic()
    docker.generate_button.click()
    result["running"] = docker.state.running
    QtCore.QTimer.singleShot(250, guarded(wait))


def wait() -> None:
    docker = state["docker"]
    if docker.state.running and time.monotonic() < state["deadline"]:
        QtCore.QTimer.singleShot(250, guarded(wait))
        return
    result["steps"] = [step.index for step in docker.state.steps]
    result["starts_on_canvas"] = docker.state.has_target
    result["finished"] = docker.state.finished
    result["generate_seconds"] = time.monotonic() - state["began"]
    result["longest_freeze_generating"] = state["stopwatch"].longest
    state["stopwatch"].longest = 0.0
    result["message"] = docker.message.text()
    result["strip"] = docker.strip.count()
    docker.slider.setValue(2)
    pixmap = docker.preview.pixmap()  # None when no step came
    result["scrubbed_preview"] = pixmap is not None and not pixmap.isNull()
    state["applied_at"] = time.monotonic()
    state["group"] = docker.apply_layers(1, len(docker.state.steps))
    QtCore.QTimer.singleShot(50, guarded(after_applying(guarded(applied))))


def after_applying(then):
    """Call `then` once the docker has added all the layers (it does so a piece at a time)."""

    def check() -> None:
        if state["docker"].state.applying:
            QtCore.QTimer.singleShot(50, guarded(check))
        else:
            then()

    return check


def applied() -> None:
    docker = state["docker"]
    group, doc = state["group"], state["doc"]
    result["apply_seconds"] = time.monotonic() - state["applied_at"]
    if os.environ.get("PAINTSTEP_SELFTEST_MEASURE_ONLY"):
        # Krita recomposes meanwhile (its freezes are measured); tests that only generate and
        # apply need not wait: PAINTSTEP_SELFTEST_SETTLE=0.
        settle = float(os.environ.get("PAINTSTEP_SELFTEST_SETTLE", "5"))
        QtCore.QTimer.singleShot(round(settle * 1000), guarded(measured))
        return
    state["stopwatch"].timer.stop()
    doc.refreshProjection()
    result["group"] = group.name() if group else None
    result["children"] = tree(group) if group else []
    result["stages"] = [step.stage for step in docker.state.steps]
    result["top_level"] = [node.name() for node in doc.rootNode().childNodes()]
    # The picture's own layer hidden, the steps alone must rebuild the picture.
    picture_layer = [n for n in doc.rootNode().childNodes() if n.name() == "picture"][0]
    picture_layer.setVisible(False)
    doc.refreshProjection()
    doc.waitForDone()
    rebuilt = document.read_canvas(doc).rgba
    original = state["picture"].rgba
    result["max_difference"] = max(abs(a - b) for a, b in zip(rebuilt, original))
    picture_layer.setVisible(True)
    doc.refreshProjection()
    # Scrub with the slider held: frame 3 shows on the canvas, and goes when it is let go.
    docker.slider.setValue(6)
    docker.slider.sliderPressed.emit()
    docker.slider.setValue(3)
    doc.waitForDone()
    names = [node.name() for node in doc.topLevelNodes()]
    result["while_scrubbing"] = names
    preview = [n for n in doc.topLevelNodes() if n.name() == "Paintstep preview"]
    result["preview_locked"] = bool(preview) and preview[0].locked()
    frame3 = docker.state.steps[2].thumbnail  # frame 3, small: compare its mean colour
    shown = document.read_canvas(doc).rgba
    result["preview_mean"] = [sum(shown[c::4]) / (len(shown) // 4) for c in range(3)]
    small = bytes(frame3.data)
    result["frame3_mean"] = [sum(small[c::4]) / (len(small) // 4) for c in range(3)]
    docker.slider.sliderReleased.emit()
    # Scrubbing back and forth, frames built from kept ones are the frames built from frame 0.
    whole = {k: frame.copy() for k, frame in docker.state.frames.all()}
    result["frames_from_kept"] = all(
        docker.state.frames.at(k) == whole[k] for k in (5, 2, 6, 1, 3, 4)
    )
    result["frames_kept"] = len(docker.state.frames.kept)
    result["after_scrubbing"] = [node.name() for node in doc.topLevelNodes()]
    result["active_after"] = doc.activeNode().name() if doc.activeNode() else None
    docker.slider.setValue(3)  # the picture for the README: mid-process in the docker
    QtCore.QTimer.singleShot(800, guarded(screenshot_then_second_job))


def tree(node) -> list:
    """A group's children, bottom first: a layer's name, or [a group's name, its tree]."""
    return [
        [child.name(), tree(child)] if child.type() == "grouplayer" else child.name()
        for child in node.childNodes()
    ]


def screenshot_then_second_job() -> None:
    docker = state["docker"]
    shot = os.environ.get("PAINTSTEP_SELFTEST_SCREENSHOT")
    if shot:
        # Only the Layers docker beside Paintstep's, so that the stage groups show.
        result["dockers"] = [other.objectName() for other in Krita.instance().dockers()]
        for other in Krita.instance().dockers():
            if other.objectName() not in ("KisLayerBox", "paintstep_docker"):
                other.hide()
            elif other.objectName() == "KisLayerBox":
                window = Krita.instance().activeWindow().qwindow()
                window.resizeDocks([other], [520], QtCore.Qt.Orientation.Vertical)
        docker.options_button.setChecked(False)
        QtCore.QTimer.singleShot(500, guarded(lambda: screenshot(shot)))
        return
    apply_single()


def screenshot(shot: str) -> None:
    result["screenshot"] = bool(Krita.instance().activeWindow().qwindow().grab().save(shot))
    apply_single()


def apply_single() -> None:
    docker = state["docker"]
    state["single"] = docker.apply_layers(3, 3)
    QtCore.QTimer.singleShot(50, guarded(after_applying(guarded(second_job))))


def second_job() -> None:
    docker, doc = state["docker"], state["doc"]
    picture_layer = [n for n in doc.rootNode().childNodes() if n.name() == "picture"][0]
    single = state["single"]
    result["single"] = tree(single) if single else []
    result["remembered_steps"] = Krita.instance().readSetting("paintstep", "steps", "")
    # A second job towards a target: a hidden layer holding the picture's negative.
    negative = QtGui.QImage(os.environ["PAINTSTEP_SELFTEST_PICTURE"]).convertToFormat(
        QtGui.QImage.Format.Format_ARGB32
    )
    negative.invertPixels()
    reference = doc.createNode("reference", "paintlayer")
    doc.rootNode().addChildNode(reference, None)
    bits = negative.constBits()
    bits.setsize(negative.sizeInBytes())
    reference.setPixelData(bytes(bits), 0, 0, negative.width(), negative.height())
    reference.setVisible(False)
    for group_node in [n for n in doc.rootNode().childNodes() if n.type() == "grouplayer"]:
        group_node.setVisible(False)
    doc.setActiveNode(picture_layer)
    doc.refreshProjection()
    docker.target_box.choose_layer("reference")
    result["target_choice"] = docker.target_box.currentText()
    docker.step_count.setValue(4)
    state["deadline"] = time.monotonic() + 90
    state["reference"] = reference
    docker.generate_button.click()
    QtCore.QTimer.singleShot(250, guarded(wait_target))


def wait_target() -> None:
    docker = state["docker"]
    if docker.state.running and time.monotonic() < state["deadline"]:
        QtCore.QTimer.singleShot(250, guarded(wait_target))
        return
    result["target_steps"] = [step.index for step in docker.state.steps]
    state["group"] = docker.apply_layers(1, len(docker.state.steps))
    QtCore.QTimer.singleShot(50, guarded(after_applying(guarded(target_applied))))


def target_applied() -> None:
    doc, group = state["doc"], state["group"]
    doc.refreshProjection()
    doc.waitForDone()
    seen = document.read_canvas(doc).rgba
    wanted = document.read_layer(doc, state["reference"], state["picture"])
    result["target_difference"] = max(abs(a - b) for a, b in zip(seen, wanted))
    result["target_group"] = group.name() if group else None
    state["deadline"] = time.monotonic() + 30
    QtCore.QTimer.singleShot(500, guarded(fetch_earlier))


def fetch_earlier() -> None:
    """The first job again, from the server's cache, as after a crash of Krita."""
    docker = state["docker"]
    if len(docker.state.earlier) < 2 and time.monotonic() < state["deadline"]:
        QtCore.QTimer.singleShot(250, guarded(fetch_earlier))
        return
    result["earlier"] = [job["steps_done"] for job in docker.state.earlier]
    docker.on_history(len(docker.state.earlier) - 1)  # the oldest: the first job
    state["deadline"] = time.monotonic() + 30
    QtCore.QTimer.singleShot(250, guarded(wait_earlier))


def wait_earlier() -> None:
    docker = state["docker"]
    if docker.state.running and time.monotonic() < state["deadline"]:
        QtCore.QTimer.singleShot(250, guarded(wait_earlier))
        return
    result["fetched_steps"] = [step.index for step in docker.state.steps]
    result["fetched_strip"] = docker.strip.count()
    QtCore.QTimer.singleShot(1000, guarded(frames_and_file_target))


def frames_and_file_target() -> None:
    docker = state["docker"]
    if os.environ.get("PAINTSTEP_SELFTEST_FRAMES"):
        # Opt-in: Krita 5.1.5's timeline model (even hidden) segfaults in importAnimation here
        # in about one run in three when the machine is busy (see manual.html).
        layer = docker.apply_as_frames()
        result["frames_layer"] = [layer.name(), bool(layer.animated())] if layer else None
    # A picture file as the target stays chosen for the next Generate too.
    box = docker.target_box
    box.path = os.environ["PAINTSTEP_SELFTEST_PICTURE"]
    box.refresh()
    box.setCurrentIndex(box.count() - 1)
    first = box.target(state["picture"])
    box.refresh()
    second = box.target(state["picture"])
    result["file_target"] = [box.currentText(), len(first or b""), len(second or b"")]
    QtCore.QTimer.singleShot(300, guarded(finish))


def measured() -> None:
    result["longest_freeze_applying"] = state["stopwatch"].longest
    # Freezes of 0.2 s or more from pressing apply on: (seconds after it, how long).
    result["freezes_applying"] = [
        (round(began - state["applied_at"], 2), round(length, 2))
        for began, length in state["stopwatch"].freezes
        if began >= state["applied_at"]
    ]
    state["stopwatch"].timer.stop()
    # Building the frames a scrub through every step shows, forward then back: from frame 0
    # each time (as the docker did) and from the frames it keeps.
    docker = state["docker"]
    count = len(docker.state.steps)
    order = [*range(1, count + 1), *range(count, 0, -1)]
    began = time.monotonic()
    for index in order:
        for k, _ in docker.state.frames.all():
            if k == index:
                break
    result["scrub_from_start_seconds"] = time.monotonic() - began
    docker.state.frames.kept.clear()
    began = time.monotonic()
    for index in order:
        docker.state.frames.at(index)
    result["scrub_from_kept_seconds"] = time.monotonic() - began
    finish()


def finish() -> None:
    app = Krita.instance()
    window = app.activeWindow()
    shot = os.environ.get("PAINTSTEP_SELFTEST_SCREENSHOT")
    if shot and window is not None and "screenshot" not in result:
        result["screenshot"] = bool(window.qwindow().grab().save(shot))
    with open(os.environ["PAINTSTEP_SELFTEST"], "w") as out:
        json.dump(result, out)
    for doc in app.documents():
        doc.setModified(False)
    app.action("file_quit").trigger()

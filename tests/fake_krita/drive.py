"""Drive the real docker over the fake Krita, in a process of its own (so that PyQt6 runs on
its own Qt libraries, not the viewer tests' PySide6 ones): `python drive.py SPEC.json`.

SPEC names a scenario and its inputs; what the docker did is written to SPEC's "out" folder as
result.json (numbers, names, messages) and arrays.npz (pixels), for the test to check.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent / "krita_plugin")]

# Krita 6 reports Qt 6: the plugin's shim must then take PyQt6, as it does in Krita 6.
sys.modules["pykrita"] = types.SimpleNamespace(qt_major_version=lambda: 6)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from krita import Document, Krita, Selection  # noqa: E402
from PyQt6 import QtWidgets  # noqa: E402

app = QtWidgets.QApplication([])

from paintstep_krita import docker as docker_module  # noqa: E402
from paintstep_krita import qt  # noqa: E402

result: dict = {"binding": qt.QtWidgets.__name__}
arrays: dict = {}


def wait(condition, seconds: float = 30.0) -> bool:
    """Run Qt's event loop until condition() holds; whether it did in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


def rgba(node_or_bgra) -> np.ndarray:
    pixels = getattr(node_or_bgra, "pixels", node_or_bgra)
    return pixels[..., [2, 1, 0, 3]].copy()


def open_document(spec: dict) -> Document:
    picture = np.load(spec["picture"])
    height, width = picture.shape[:2]
    doc = Document(width, height, spec.get("name", "picture"), depth=spec.get("depth", "U8"))
    layer = doc.createNode("picture", "paintlayer")
    layer.pixels[:] = picture[..., [2, 1, 0, 3]]
    doc.rootNode().addChildNode(layer, None)
    if "target" in spec:
        target = doc.createNode("target", "paintlayer")
        target.pixels[:] = np.load(spec["target"])[..., [2, 1, 0, 3]]
        target.visible = False
        doc.rootNode().addChildNode(target, layer)
    doc.setActiveNode(layer)
    Krita.instance().document = doc
    return doc


def new_docker():
    docker = docker_module.PaintstepDocker()
    result["connected"] = wait(lambda: "Connected" in docker.server_label.text(), 20)
    return docker


def generate(docker, steps: int, seed: int = 0, *, finish: bool = True) -> None:
    docker.step_count.setValue(steps)
    docker.seed.setValue(seed)
    docker.generate_button.click()
    result["running_after_click"] = docker.state.running
    if finish:
        result["finished"] = wait(lambda: not docker.state.running, 60)
        result["message"] = docker.message.text()


def keep_steps(docker, name: str = "step") -> None:
    for step in docker.state.steps:
        arrays[f"{name}{step.index}"] = step.layer.array().copy()
        result.setdefault(f"{name}_boxes", []).append([step.x, step.y])
        result.setdefault(f"{name}_stages", []).append(step.stage)


def layer_tree(doc) -> list:
    def describe(node):
        entry = {"name": node.name(), "type": node.type(), "locked": node.locked}
        if node.type() == "grouplayer":
            entry["children"] = [describe(child) for child in node.childNodes()]
        return entry

    return [describe(node) for node in doc.topLevelNodes()]


def apply(docker, first: int, last: int, key: str) -> None:
    """Apply steps first..last as layers and wait until the last band is in."""
    doc = Krita.instance().document
    writes = doc.writes
    group = docker.apply_layers(first, last)
    result[f"{key}_buttons_off_while_applying"] = not docker.apply_all.isEnabled()
    wait(lambda: not docker.state.applying)
    result[f"{key}_writes"] = doc.writes - writes
    result[f"{key}_group"] = group.name()
    result[f"{key}_parent_is_root"] = group.parentNode() is doc.rootNode()
    for layer in paint_layers_in(group):
        arrays[f"{key}_{layer.name()}"] = rgba(layer)


def paint_layers_in(group) -> list:
    """The paint layers inside a group, at any depth, bottom first."""
    found = []
    for child in group.childNodes():
        found.extend(paint_layers_in(child) if child.type() == "grouplayer" else [child])
    return found


# -- scenarios ---------------------------------------------------------------------------------


def generate_scrub_apply(spec: dict) -> None:
    doc = open_document(spec)
    docker = new_docker()
    result["engines"] = [docker.engine.itemText(i) for i in range(docker.engine.count())]
    generate(docker, spec["steps"])
    keep_steps(docker)
    result["strip"] = docker.strip.count()
    result["slider"] = [docker.slider.minimum(), docker.slider.maximum(), docker.slider.value()]
    result["apply_enabled"] = docker.apply_all.isEnabled()
    # Scrubbing: the slider held, moved, released.
    docker.slider.sliderPressed.emit()
    result["active_while_scrubbing"] = doc.activeNode().name()
    for k in spec["scrub"]:
        docker.slider.setValue(k)
        top = doc.topLevelNodes()[-1]
        result.setdefault("preview_layers", []).append([top.name(), top.locked])
        arrays.setdefault("previews", []).append(doc.projection())
    docker.slider.sliderReleased.emit()
    result["after_scrub"] = layer_tree(doc)
    arrays["projection_after_scrub"] = doc.projection()
    apply(docker, 2, 2, "one")
    apply(docker, 1, spec["steps"], "all")
    result["tree"] = layer_tree(doc)
    arrays["projection_after_apply"] = doc.projection()


def stage_groups(spec: dict) -> None:
    """A style chosen in the engine options form; its steps applied by stage."""
    doc = open_document(spec)
    docker = new_docker()
    docker.options_button.setChecked(True)
    form = docker.options_form
    result["options_shown"] = list(form.widgets)
    style = form.widgets["style"]
    result["style_choices"] = [style.itemText(i) for i in range(style.count())]
    result["style_default"] = style.currentText()
    style.setCurrentText(spec["style"])  # chosen as an artist would
    result["options_chosen"] = form.chosen()
    generate(docker, spec["steps"])
    keep_steps(docker)
    result["strip_labels"] = [docker.strip.item(i).text() for i in range(docker.strip.count())]
    for first, last, key in spec["apply"]:
        apply(docker, first, last, key)
        if first == 1 and last == spec["steps"]:  # the steps alone, over white paper
            picture, group = doc.topLevelNodes()[0], doc.topLevelNodes()[-1]
            shown = {node: node.visible for node in doc.topLevelNodes()}
            for node in doc.topLevelNodes():
                node.visible = node is group
            paper = doc.createNode("paper", "paintlayer")
            paper.pixels[:] = 255
            doc.rootNode().addChildNode(paper, None)
            arrays[f"{key}_rebuilt"] = doc.projection()
            paper.remove()
            for node, visible in shown.items():
                node.visible = visible
            result["picture_below"] = picture.name()
    result["tree"] = layer_tree(doc)


def selection_and_target(spec: dict) -> None:
    doc = open_document(spec)
    x, y = spec["box"][:2]
    doc.setSelection(Selection(x, y, np.load(spec["mask"])))
    docker = new_docker()
    docker.from_selection.setChecked(True)
    docker.target_box.choose_layer("target")
    result["target_choice"] = docker.target_box.currentText()
    generate(docker, spec["steps"])
    keep_steps(docker)
    result["canvas_box"] = [docker.state.canvas.x, docker.state.canvas.y, docker.state.canvas.width]
    result["canvas_box"].append(docker.state.canvas.height)
    apply(docker, 1, spec["steps"], "all")
    arrays["projection_after_apply"] = doc.projection()


def refused_document(spec: dict) -> None:
    open_document(spec)
    docker = new_docker()
    docker.generate_button.click()
    app.processEvents()
    result["message"] = docker.message.text()
    result["running"] = docker.state.running
    result["button"] = docker.generate_button.text()


def settings_persist(spec: dict) -> None:
    open_document(spec)
    docker = new_docker()
    docker.step_count.setValue(7)
    docker.seed.setValue(1234)
    docker.address_edit.setText(spec["typed"])
    docker.connect_button.click()
    result["connected_again"] = wait(lambda: "Connected" in docker.server_label.text(), 20)
    stored = Krita.instance().settings
    result["stored"] = {name: value for (group, name), value in stored.items()}
    again = docker_module.PaintstepDocker()
    result["new_docker"] = [again.step_count.value(), again.seed.value(), again.address_edit.text()]


def no_server(spec: dict) -> None:
    open_document(spec)
    docker = docker_module.PaintstepDocker()
    wait(lambda: "connecting" not in docker.server_label.text(), 20)
    result["label"] = docker.server_label.text()
    docker.generate_button.click()
    wait(lambda: not docker.state.running, 20)
    result["message"] = docker.message.text()
    result["button"] = docker.generate_button.text()


def no_client(spec: dict) -> None:
    """The plugin copied without its vendor folder: Paintstep's client cannot be imported."""

    def missing():
        raise ModuleNotFoundError("No module named 'paintstep'")

    settings_module = sys.modules["paintstep_krita.settings"]
    settings_module.protocol_module = missing
    open_document(spec)
    docker = docker_module.PaintstepDocker()
    docker.canvasChanged(None)  # Krita calls it when the window opens
    result["label"] = docker.server_label.text()
    docker.generate_button.click()
    result["message"] = docker.message.text()
    result["running"] = docker.state.running
    docker.connect_button.click()  # raised AttributeError (no keys) before
    result["after_connect"] = docker.server_label.text()


def server_dies(spec: dict) -> None:
    open_document(spec)
    docker = new_docker()
    generate(docker, spec["steps"], finish=False)
    result["got_a_step"] = wait(lambda: len(docker.state.steps) >= 1, 30)
    os.kill(spec["server_pid"], 9)
    result["stopped"] = wait(lambda: not docker.state.running, 30)
    result["message"] = docker.message.text()
    result["label"] = docker.server_label.text()
    result["button"] = docker.generate_button.text()
    result["steps_kept"] = len(docker.state.steps)


def cancel_midway(spec: dict) -> None:
    open_document(spec)
    docker = new_docker()
    generate(docker, spec["steps"], finish=False)
    result["got_a_step"] = wait(lambda: len(docker.state.steps) >= 1, 30)
    result["button_while_running"] = docker.generate_button.text()
    docker.generate_button.click()
    result["stopped"] = wait(lambda: not docker.state.running, 30)
    result["message"] = docker.message.text()
    result["button"] = docker.generate_button.text()
    result["steps_kept"] = len(docker.state.steps)
    result["apply_enabled"] = docker.apply_all.isEnabled()


def earlier_results(spec: dict) -> None:
    open_document(spec)
    docker = new_docker()
    generate(docker, spec["steps"])
    keep_steps(docker, "first")
    # The docker closed (or Krita crashed) and opened again: the result is still offered.
    docker.state.connection.close()
    again = new_docker()
    wait(lambda: bool(again.state.earlier))
    result["history"] = [again.history.itemText(i) for i in range(again.history.count())]
    again.history.activated.emit(0)
    result["fetched"] = wait(lambda: again.state.finished, 30)
    keep_steps(again, "again")


def as_frames(spec: dict) -> None:
    doc = open_document(spec)
    docker = new_docker()
    generate(docker, spec["steps"])
    keep_steps(docker)
    # importAnimation's files are gone once it returns: keep copies as the fake reads them.
    real_import = doc.importAnimation

    def importing(files, first, step):
        for k, path in enumerate(files):
            from PyQt6 import QtGui

            image = QtGui.QImage(path).convertToFormat(QtGui.QImage.Format.Format_RGBA8888)
            bits = image.constBits()
            bits.setsize(image.sizeInBytes())
            arrays[f"frame{k + 1}"] = np.frombuffer(bytes(bits), np.uint8).reshape(
                image.height(), image.width(), 4
            )
        return real_import(files, first, step)

    doc.importAnimation = importing
    layer = docker.apply_as_frames()
    result["layer"] = layer.name()
    result["first_frame"] = doc.animations[0][2]
    result["files"] = len(doc.animations[0][1])
    result["message"] = docker.message.text()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["out"])
    try:
        globals()[spec["scenario"]](spec)
    except Exception:
        result["error"] = traceback.format_exc()
    (out / "result.json").write_text(json.dumps(result))
    np.savez(out / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
    os._exit(0)  # the connection's thread may still wait on its socket


if __name__ == "__main__":
    sys.exit(main())

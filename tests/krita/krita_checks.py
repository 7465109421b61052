"""Runs inside a real Krita (kritarunner): the plugin's document code against Krita's API.

Each check writes what it saw into the JSON file named by PAINTSTEP_RESULT; the pytest side
(tests/test_krita.py) reads it and asserts.
"""

import json
import os
import tempfile
import traceback


def save(result):
    with open(os.environ["PAINTSTEP_RESULT"], "w") as out:
        json.dump(result, out)


def rgba(r, g, b, a=255):
    return bytes([r, g, b, a])


def nothing(args=None):
    """Krita starting once in a fresh HOME, which builds its resource database there."""
    save({})


def layers(args=None):
    from krita import Krita, Selection
    from paintstep_krita.document import (
        StepPixels,
        add_step_layers,
        key,
        paint_layers,
        read_canvas,
        read_layer,
        size,
        title,
    )
    from paintstep_krita.pixels import UnsupportedDocument, swap_red_blue

    result = {}
    try:
        from paintstep_krita.qt import QT_MAJOR, QtWidgets

        result["qt"] = [QT_MAJOR, QtWidgets.__name__]
        app = Krita.instance()
        doc = app.createDocument(64, 48, "checks", "RGBA", "U8", "", 300.0)
        base = doc.createNode("base", "paintlayer")
        doc.rootNode().addChildNode(base, None)
        base.setPixelData(swap_red_blue(rgba(200, 100, 50) * (64 * 48)), 0, 0, 64, 48)
        patch = swap_red_blue(rgba(10, 20, 30) * (8 * 4))
        base.setPixelData(patch, 16, 8, 8, 4)
        doc.setActiveNode(base)
        doc.refreshProjection()
        canvas = read_canvas(doc)
        result["size"] = [canvas.width, canvas.height]
        result["pixel_0_0"] = list(canvas.rgba[0:4])
        offset = (8 * 64 + 16) * 4
        result["pixel_16_8"] = list(canvas.rgba[offset : offset + 4])
        # An earlier job's box, read again: past the document's edge it is transparent.
        part = read_canvas(doc, box=(14, 7, 60, 2))
        result["box"] = [part.x, part.y, part.width, part.height, len(part.rgba)]
        result["box_pixels"] = [list(part.rgba[248:252]), list(part.rgba[236:240])]
        result["document"] = [key(doc), title(doc), list(size(doc))]

        selection = Selection()
        selection.select(10, 6, 20, 12, 255)
        doc.setSelection(selection)
        boxed = read_canvas(doc, from_selection=True)
        result["selection"] = [boxed.x, boxed.y, boxed.width, boxed.height, len(boxed.mask or b"")]
        first = (2 * 20 + 6) * 4  # canvas pixel (16, 8) in the box at (10, 6)
        result["selection_pixel"] = list(boxed.rgba[first : first + 4])
        doc.setSelection(Selection())

        reference = doc.createNode("reference", "paintlayer")
        doc.rootNode().addChildNode(reference, None)
        reference.setPixelData(swap_red_blue(rgba(1, 2, 3, 40) * (64 * 48)), 0, 0, 64, 48)
        reference.setVisible(False)
        doc.refreshProjection()
        result["paint_layers"] = [name for name, _ in paint_layers(doc)]
        target = read_layer(doc, reference, boxed)
        result["target"] = [len(target), *target[0:4]]
        doc.setActiveNode(base)

        steps = [
            StepPixels(1, 0, 0, 4, 4, rgba(255, 0, 0) * 16),
            StepPixels(2, 2, 2, 2, 2, rgba(0, 255, 0, 128) * 4),
            StepPixels(3, 0, 0, 0, 0, b""),
        ]
        group = add_step_layers(doc, steps, "Paintstep 1", offset=(30, 20))
        result["group"] = group.name()
        result["group_type"] = group.type()
        top = [node.name() for node in doc.rootNode().childNodes()]
        result["top_level"] = top
        result["children"] = [node.name() for node in group.childNodes()]
        step1 = group.childNodes()[0]
        result["step1_pixel"] = list(swap_red_blue(bytes(step1.pixelData(31, 21, 1, 1))))
        result["step1_outside"] = list(swap_red_blue(bytes(step1.pixelData(29, 21, 1, 1))))
        step2 = group.childNodes()[1]
        result["step2_pixel"] = list(swap_red_blue(bytes(step2.pixelData(32, 22, 1, 1))))
        doc.refreshProjection()
        seen = read_canvas(doc)
        at = (22 * 64 + 32) * 4
        result["composited"] = list(seen.rgba[at : at + 4])

        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "checks.kra")
        doc.setBatchmode(True)
        result["saved"] = bool(doc.saveAs(path))
        doc.close()
        again = app.openDocument(path)
        again.waitForDone()
        group = [n for n in again.rootNode().childNodes() if n.name() == "Paintstep 1"][0]
        result["reloaded_children"] = [node.name() for node in group.childNodes()]
        step2 = group.childNodes()[1]
        result["reloaded_step2"] = list(swap_red_blue(bytes(step2.pixelData(32, 22, 1, 1))))
        again.close()

        deep = app.createDocument(8, 8, "deep", "RGBA", "U16", "", 300.0)
        layer = deep.createNode("l", "paintlayer")
        deep.rootNode().addChildNode(layer, None)
        value = bytes([0x00, 0x40, 0x00, 0x80, 0x00, 0xC0, 0xFF, 0xFF])  # B, G, R, A as u16
        layer.setPixelData(value * 64, 0, 0, 8, 8)
        deep.refreshProjection()
        result["u16_pixel"] = list(read_canvas(deep).rgba[0:4])
        deep.close()

        gray = app.createDocument(8, 8, "gray", "GRAYA", "U8", "", 300.0)
        layer = gray.createNode("l", "paintlayer")
        gray.rootNode().addChildNode(layer, None)
        layer.setPixelData(bytes([90, 255]) * 64, 0, 0, 8, 8)
        gray.refreshProjection()
        result["gray_pixel"] = list(read_canvas(gray).rgba[0:4])
        gray.setActiveNode(layer)
        painted = add_step_layers(gray, [StepPixels(1, 0, 0, 2, 1, rgba(70, 70, 70, 200) * 2)], "g")
        result["gray_step"] = list(bytes(painted.childNodes()[0].pixelData(1, 0, 1, 1)))
        gray.close()

        cmyk = app.createDocument(8, 8, "cmyk", "CMYKA", "U8", "", 300.0)
        before = [node.name() for node in cmyk.topLevelNodes()]
        try:
            add_step_layers(cmyk, [StepPixels(1, 0, 0, 1, 1, rgba(1, 2, 3))], "c")
            result["cmyk"] = "written"
        except UnsupportedDocument as error:
            result["cmyk"] = str(error)
        result["cmyk_untouched"] = [node.name() for node in cmyk.topLevelNodes()] == before
        cmyk.close()

        floaty = app.createDocument(8, 8, "float", "RGBA", "F32", "", 300.0)
        try:
            read_canvas(floaty)
            result["float"] = "read"
        except UnsupportedDocument as error:
            result["float"] = str(error)
        floaty.close()
    except Exception:
        result["error"] = traceback.format_exc()
    save(result)


def frames(args=None):
    from krita import Krita
    from paintstep_krita.document import add_frames

    result = {}
    try:
        from PyQt5.QtGui import QColor, QImage

        app = Krita.instance()
        doc = app.createDocument(32, 24, "frames", "RGBA", "U8", "", 300.0)
        window = app.openWindow()
        window.addView(doc)
        folder = tempfile.mkdtemp()
        files = []
        for k, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)], start=1):
            image = QImage(32, 24, QImage.Format_ARGB32)
            image.fill(QColor(*colour))
            path = os.path.join(folder, f"frame_{k:04d}.png")
            image.save(path)
            files.append(path)
        save({"inside": "Document.importAnimation"})  # what the test finds if Krita dies in it
        layer = add_frames(doc, files, 1, "Paintstep frames")
        result["name"] = layer.name()
        result["animated"] = bool(layer.animated())
        seen = []
        for time in (1, 2, 3):
            seen.append(list(bytes(layer.pixelDataAtTime(0, 0, 1, 1, time))))
        result["frames"] = seen
    except Exception:
        result["error"] = traceback.format_exc()
    save(result)
    os._exit(0)  # Krita crashes on exit after openWindow; the result is already written


def stage_groups(args=None):
    """A job's steps (written by the test: steps.json beside the result, each step's straight
    RGBA in a file of its own) applied over white paper, then saved and opened again."""
    from krita import Krita
    from paintstep_krita.document import StepPixels, add_step_layers, read_canvas

    result = {}
    try:
        folder = os.path.dirname(os.environ["PAINTSTEP_RESULT"])
        with open(os.environ["PAINTSTEP_STEPS"]) as job:
            job = json.load(job)
        steps = []
        for step in job["steps"]:
            with open(step["file"], "rb") as pixels:
                rgba_bytes = pixels.read()
            steps.append(
                StepPixels(
                    step["index"],
                    step["x"],
                    step["y"],
                    step["width"],
                    step["height"],
                    rgba_bytes,
                    stage=step["stage"],
                )
            )
        width, height = job["width"], job["height"]
        app = Krita.instance()
        doc = app.createDocument(width, height, "stages", "RGBA", "U8", "", 300.0)
        paper = doc.createNode("paper", "paintlayer")
        doc.rootNode().addChildNode(paper, None)
        paper.setPixelData(rgba(255, 255, 255) * (width * height), 0, 0, width, height)  # white
        doc.setActiveNode(paper)
        group = add_step_layers(doc, steps, "Paintstep job 1-8")
        result["tree"] = tree(doc.rootNode())
        result["types"] = [node.type() for node in group.childNodes()]
        doc.refreshProjection()
        doc.waitForDone()
        with open(os.path.join(folder, "flattened.rgba"), "wb") as out:
            out.write(read_canvas(doc).rgba)
        path = os.path.join(folder, "stages.kra")
        doc.setBatchmode(True)
        result["saved"] = bool(doc.saveAs(path))
        doc.close()
        again = app.openDocument(path)
        again.waitForDone()
        result["reloaded_tree"] = tree(again.rootNode())
        again.refreshProjection()
        again.waitForDone()
        reloaded = read_canvas(again).rgba
        with open(os.path.join(folder, "flattened.rgba"), "rb") as before:
            result["reloaded_same"] = reloaded == before.read()
        again.close()
    except Exception:
        result["error"] = traceback.format_exc()
    save(result)


def tree(node):
    """A node's children as [name, children] for groups and names for layers, bottom first."""
    return [
        [child.name(), tree(child)] if child.type() == "grouplayer" else child.name()
        for child in node.childNodes()
    ]

"""Everything that touches Krita's documents and layers (app.py has the rest of Krita's API).
The rest of the plugin sees plain bytes (straight RGBA) and numbers, and is tested without
Krita."""

from __future__ import annotations

from dataclasses import dataclass

from .pixels import UnsupportedDocument, from_rgba, to_rgba


@dataclass(frozen=True)
class Canvas:
    """What Paintstep paints from: the visible image (or the selection's box) as RGBA."""

    x: int
    y: int
    width: int
    height: int
    rgba: bytes
    mask: bytes | None = None  # one byte a pixel, non-zero where selected


@dataclass(frozen=True)
class StepPixels:
    """One step's layer: straight RGBA at (x, y) of the canvas it was painted from."""

    index: int
    x: int
    y: int
    width: int
    height: int
    rgba: bytes
    bgra: bytes | None = None  # the same pixels in an 8-bit RGBA document's layout, if known
    stage: str | None = None  # the part of the process, when the engine names it


def read_canvas(
    document, from_selection: bool = False, box: tuple[int, int, int, int] | None = None
) -> Canvas:
    """The document's visible image (all layers, as shown), the selection's box of it, or the
    part in `box` (x, y, width, height; transparent beyond the document's edges)."""
    model, depth = document.colorModel(), document.colorDepth()
    x, y, width, height = box or (0, 0, document.width(), document.height())
    mask = None
    if from_selection:
        selection = document.selection()
        if selection is None or selection.width() == 0 or selection.height() == 0:
            raise UnsupportedDocument(
                "Nothing is selected; select the area to paint, or generate from the whole canvas."
            )
        x, y = selection.x(), selection.y()
        width, height = selection.width(), selection.height()
        mask = bytes(selection.pixelData(x, y, width, height))
    document.waitForDone()
    data = bytes(document.pixelData(x, y, width, height))
    return Canvas(x, y, width, height, to_rgba(data, model, depth), mask)


def key(document) -> str:
    """What ties a job to its document: the file's path, or its name while it has none."""
    return document.fileName() or document.name() or "untitled"


def title(document) -> str:
    """The document's name, as a job is called after it."""
    return document.name() or "untitled"


def size(document) -> tuple[int, int]:
    return document.width(), document.height()


def paint_layers(document) -> list:
    """The document's paint layers, top first, as (name, node): candidates for a target."""
    found = []

    def visit(node) -> None:
        for child in reversed(node.childNodes()):
            if child.type() == "paintlayer":
                found.append((child.name(), child))
            visit(child)

    visit(document.rootNode())
    return found


def read_layer(document, node, canvas: Canvas) -> bytes:
    """One layer's own pixels (not what is shown) in the canvas's box, as straight RGBA."""
    data = bytes(node.pixelData(canvas.x, canvas.y, canvas.width, canvas.height))
    return to_rgba(data, node.colorModel(), node.colorDepth())


def add_step_layers(document, steps: list[StepPixels], name: str, offset: tuple[int, int] = (0, 0)):
    """A group named `name` above the current layer, holding one paint layer per step, the
    first step at the bottom; steps that name their stage go into a sub-group per stage, named
    for it. `offset` places the canvas the steps were painted from."""
    *_, group = step_layer_pieces(document, steps, name, offset)
    return group


def stage_runs(steps: list[StepPixels]) -> list[tuple[str | None, list[StepPixels]]]:
    """The steps cut where their stage changes, in order: (stage, steps) for each run. A stage
    met again later starts a run of its own, so that the layers keep the process's order."""
    runs: list[tuple[str | None, list[StepPixels]]] = []
    for step in steps:
        stage = step.stage or None
        if runs and runs[-1][0] == stage:
            runs[-1][1].append(step)
        else:
            runs.append((stage, [step]))
    return runs


def stage_group_name(stage: str) -> str:
    """A stage's sub-group: "lay-in" is called "Lay-in"."""
    return stage[:1].upper() + stage[1:]


def step_layer_pieces(
    document, steps: list[StepPixels], name: str, offset: tuple[int, int], band_rows: int = 256
):
    """add_step_layers a piece at a time: it yields the group after each band of rows, so that
    a caller can let Krita's UI run in between (a 4096 px step is 64 MB of pixels)."""
    model, depth = document.colorModel(), document.colorDepth()
    from_rgba(b"", model, depth)  # refuses a document it cannot write into, before any change
    group = document.createGroupLayer(name)
    current = document.activeNode()
    parent = current.parentNode() if current is not None else None
    if parent is None:
        parent, current = document.rootNode(), None
    parent.addChildNode(group, current)
    below_run = None  # the group's topmost child so far
    for stage, run in stage_runs(steps):
        into, below = group, below_run
        if stage is not None:
            into, below = document.createGroupLayer(stage_group_name(stage)), None
            group.addChildNode(into, below_run)
            below_run = into
        for step in run:
            layer = document.createNode(f"Step {step.index}", "paintlayer")
            into.addChildNode(layer, below)
            below = layer
            if stage is None:
                below_run = layer
            yield from write_step(layer, step, model, depth, offset, band_rows, group)
    yield group


def write_step(layer, step: StepPixels, model, depth, offset, band_rows: int, group):
    """A step's pixels into its layer, a band of rows at a time; yields `group` after each."""
    if not (step.width and step.height):
        return
    if step.bgra is not None and (model, depth) == ("RGBA", "U8"):
        pixels = step.bgra
    else:
        pixels = from_rgba(step.rgba, model, depth)
    row = len(pixels) // step.height
    for top in range(0, step.height, band_rows):
        rows = min(band_rows, step.height - top)
        band = pixels[top * row : (top + rows) * row]
        layer.setPixelData(band, step.x + offset[0], step.y + offset[1] + top, step.width, rows)
        yield group


def add_preview(document, name: str):
    """A locked layer at the top of the stack for previews, not the active one."""
    active = document.activeNode()
    layer = document.createNode(name, "paintlayer")
    top = document.topLevelNodes()
    document.rootNode().addChildNode(layer, top[-1] if top else None)
    layer.setLocked(True)
    if active is not None:
        document.setActiveNode(active)
    return layer


def show_preview(document, layer, frame: StepPixels, offset: tuple[int, int]) -> None:
    """Put a frame (RGBA) into the preview layer at the canvas box's place."""
    model, depth = document.colorModel(), document.colorDepth()
    pixels = from_rgba(frame.rgba, model, depth)
    layer.setPixelData(pixels, offset[0] + frame.x, offset[1] + frame.y, frame.width, frame.height)
    document.refreshProjection()


def remove_preview(document, layer) -> None:
    layer.remove()
    document.refreshProjection()


def add_frames(document, files: list[str], first_frame: int, name: str):
    """Steps as animation frames: file k on frame first_frame + k of a new layer `name`.

    Krita's importAnimation needs an open window, and puts the layer at the top of the stack.
    """
    settle(document)  # Krita's timeline can crash when frames come in mid-update
    before = {node.uniqueId() for node in document.topLevelNodes()}
    if not document.importAnimation(files, first_frame, 1):
        raise UnsupportedDocument("Krita could not import the frames as an animation.")
    # Krita 5.1 tells its layer and timeline models of the new layer by a queued signal:
    # renaming it before that signal has run crashed Krita's timeline (a segfault, under load).
    settle(document)
    added = [node for node in document.topLevelNodes() if node.uniqueId() not in before]
    layer = added[-1]
    layer.setName(name)
    return layer


def settle(document) -> None:
    """Let Krita finish what it has queued: the image's work, then the UI's queued signals."""
    from .qt import QtWidgets

    document.waitForDone()
    for _ in range(3):
        QtWidgets.QApplication.processEvents()
    document.waitForDone()

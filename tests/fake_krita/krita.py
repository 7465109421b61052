"""A fake of the part of Krita's Python API the plugin uses, for unit tests of the docker's
logic without Krita (tests/test_docker_logic.py).

It behaves as Krita 5.1 does where the plugin relies on it: an 8-bit RGBA document's pixelData
is B, G, R, A; `addChildNode(child, above)` puts the child just above `above`, or at the bottom
when `above` is None; childNodes() lists bottom first; the document's pixelData is the
projection, every visible layer composited bottom to top.
"""

from __future__ import annotations

import itertools

import numpy as np
from PyQt6 import QtCore, QtWidgets

_ids = itertools.count(1)


class DockWidget(QtWidgets.QDockWidget):
    def canvasChanged(self, canvas) -> None:  # noqa: N802 - Krita's name
        pass


class DockWidgetFactoryBase:
    DockRight = 2


class DockWidgetFactory:
    def __init__(self, name, area, cls) -> None:
        self.name, self.area, self.cls = name, area, cls


class Notifier(QtCore.QObject):
    applicationClosing = QtCore.pyqtSignal()  # noqa: N815 - Krita's name
    windowCreated = QtCore.pyqtSignal()  # noqa: N815


def over(below: np.ndarray, above: np.ndarray) -> np.ndarray:
    """Straight-alpha 'over' of two float (h, w, 4) images with channels in 0..1."""
    a_top, a_bottom = above[..., 3:], below[..., 3:]
    alpha = a_top + a_bottom * (1 - a_top)
    colour = above[..., :3] * a_top + below[..., :3] * a_bottom * (1 - a_top)
    colour = np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0)
    return np.concatenate([colour, alpha], axis=2)


class Node:
    def __init__(self, document: Document, name: str, kind: str) -> None:
        self.document = document
        self._name = name
        self.kind = kind
        self.parent: Node | None = None
        self.children: list[Node] = []  # bottom first, as Krita lists them
        self.locked = False
        self.visible = True
        self.removed = False
        self.id = next(_ids)
        # B, G, R, A, the whole document's size, as Krita keeps an 8-bit RGBA layer.
        self.pixels = np.zeros((document.height(), document.width(), 4), np.uint8)

    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def type(self) -> str:
        return self.kind

    def uniqueId(self):  # noqa: N802
        return self.id

    def childNodes(self) -> list:  # noqa: N802
        return list(self.children)

    def parentNode(self):  # noqa: N802
        return self.parent

    def addChildNode(self, child: Node, above: Node | None) -> bool:  # noqa: N802
        child.parent = self
        where = 0 if above is None else self.children.index(above) + 1
        self.children.insert(where, child)
        return True

    def remove(self) -> bool:
        self.parent.children.remove(self)
        self.removed = True
        return True

    def setLocked(self, locked: bool) -> None:  # noqa: N802
        self.locked = locked

    def colorModel(self) -> str:  # noqa: N802
        return self.document.model

    def colorDepth(self) -> str:  # noqa: N802
        return self.document.depth

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        return region(self.pixels, x, y, w, h)

    def setPixelData(self, data, x: int, y: int, w: int, h: int) -> bool:  # noqa: N802
        band = np.frombuffer(bytes(data), np.uint8).reshape(h, w, 4)
        height, width = self.pixels.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x0 < x1 and y0 < y1:
            self.pixels[y0:y1, x0:x1] = band[y0 - y : y1 - y, x0 - x : x1 - x]
        self.document.writes += 1
        return True

    def composite(self, below: np.ndarray) -> np.ndarray:
        """What this node shows over `below` (float straight RGBA)."""
        if not self.visible:
            return below
        if self.kind == "grouplayer" or self.parent is None:
            for child in self.children:
                below = child.composite(below)
            return below
        rgba = self.pixels[..., [2, 1, 0, 3]].astype(np.float64) / 255
        return over(below, rgba)


def region(pixels: np.ndarray, x: int, y: int, w: int, h: int) -> bytes:
    """Pixels of (x, y, w, h), transparent outside the image, as Krita gives them."""
    out = np.zeros((h, w, pixels.shape[2]), np.uint8)
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 < x1 and y0 < y1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = pixels[y0:y1, x0:x1]
    return out.tobytes()


class Selection:
    def __init__(self, x: int, y: int, mask: np.ndarray) -> None:
        self._x, self._y, self.mask = x, y, mask  # mask: (h, w) uint8 over the box

    def x(self) -> int:
        return self._x

    def y(self) -> int:
        return self._y

    def width(self) -> int:
        return self.mask.shape[1]

    def height(self) -> int:
        return self.mask.shape[0]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        assert (x, y, w, h) == (self._x, self._y, self.width(), self.height())
        return self.mask.tobytes()


class Document:
    def __init__(
        self, width: int, height: int, name: str = "picture", model="RGBA", depth="U8"
    ) -> None:
        self._width, self._height, self._name = width, height, name
        self.model, self.depth = model, depth
        self.root = Node(self, "root", "grouplayer")
        self.active: Node | None = None
        self._selection: Selection | None = None
        self.writes = 0  # setPixelData calls, to see that applying goes a band at a time
        self.animations: list = []

    def width(self) -> int:
        return self._width

    def height(self) -> int:
        return self._height

    def name(self) -> str:
        return self._name

    def fileName(self) -> str:  # noqa: N802
        return ""

    def colorModel(self) -> str:  # noqa: N802
        return self.model

    def colorDepth(self) -> str:  # noqa: N802
        return self.depth

    def rootNode(self) -> Node:  # noqa: N802
        return self.root

    def topLevelNodes(self) -> list:  # noqa: N802
        return self.root.childNodes()

    def activeNode(self):  # noqa: N802
        return self.active

    def setActiveNode(self, node) -> None:  # noqa: N802
        self.active = node

    def createNode(self, name: str, kind: str) -> Node:  # noqa: N802
        return Node(self, name, kind)

    def createGroupLayer(self, name: str) -> Node:  # noqa: N802
        return Node(self, name, "grouplayer")

    def selection(self):
        return self._selection

    def setSelection(self, selection) -> None:  # noqa: N802
        self._selection = selection

    def waitForDone(self) -> None:  # noqa: N802
        pass

    def refreshProjection(self) -> None:  # noqa: N802
        pass

    def projection(self) -> np.ndarray:
        """The visible image as straight RGBA uint8."""
        blank = np.zeros((self._height, self._width, 4))
        shown = self.root.composite(blank)
        return np.rint(shown * 255).astype(np.uint8)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        return region(self.projection()[..., [2, 1, 0, 3]], x, y, w, h)

    def importAnimation(self, files, first: int, step: int) -> bool:  # noqa: N802
        layer = self.createNode("imported", "paintlayer")
        top = self.topLevelNodes()
        self.root.addChildNode(layer, top[-1] if top else None)
        self.animations.append((layer, list(files), first, step))
        return True


class Krita:
    _instance: Krita | None = None

    def __init__(self) -> None:
        self.settings: dict = {}
        self.document: Document | None = None
        self._notifier = Notifier()
        self.factories: list = []

    @classmethod
    def instance(cls) -> Krita:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def activeDocument(self):  # noqa: N802
        return self.document

    def readSetting(self, group: str, name: str, default: str) -> str:  # noqa: N802
        return self.settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:  # noqa: N802
        self.settings[(group, name)] = value

    def notifier(self) -> Notifier:
        return self._notifier

    def addDockWidgetFactory(self, factory) -> None:  # noqa: N802
        self.factories.append(factory)

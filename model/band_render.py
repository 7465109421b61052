"""Drawing one step's strokes on several processes at once, a band of rows each.

skia holds Python's interpreter lock while it draws, so threads cannot share the drawing; other
processes can. Each draws only the strokes that reach its rows (brush.render_rows), exactly as
one process drawing the whole layer would, into a layer file they all map. Small layers, and
PAINTSTEP_THREADS=1, are drawn on the calling process alone.
"""

from __future__ import annotations

import atexit
import mmap
import os
import pickle
import subprocess
import sys
import tempfile
import threading

import numpy as np
from paintstep.bands import threads
from PIL import Image

from .brush import Strokes, draw_strokes, raster_surface, render_rows

PARALLEL_AREA = 1 << 20  # px: a smaller layer is drawn faster than it is sent
PARALLEL_STROKES = 256  # and so is a step of fewer strokes


def render_layer(strokes: Strokes, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The strokes on a clear layer of this size placed at (x0, y0), as straight RGBA.

    Wide brushes are drawn on a reduced surface and scaled up (their edges soften by a few
    pixels, as a big brush's do); many small strokes on a large layer are drawn on all cores,
    exactly as brush.render_layer draws them.
    """
    narrowest = float(strokes.radius.min(initial=0.0))
    if narrowest >= 2 * REDUCED_RADIUS:
        factor = min(MAX_REDUCTION, int(narrowest // REDUCED_RADIUS))
        return render_reduced(strokes, x0, y0, width, height, factor)
    helpers = threads() - 1
    if helpers < 1 or width * height < PARALLEL_AREA or len(strokes) < PARALLEL_STROKES:
        out = np.zeros((height, width, 4), np.uint8)
        render_rows(strokes, x0, y0, out)
        return out
    with _lock:
        try:
            return _draw_in_bands(strokes, x0, y0, width, height, helpers)
        except (OSError, EOFError, pickle.PickleError, HelperFailed):
            _stop_helpers()  # a helper died or could not start: this step is drawn here
    out = np.zeros((height, width, 4), np.uint8)
    render_rows(strokes, x0, y0, out)
    return out


# Brushes of twice this radius and more are drawn on a surface reduced to at least this radius
# (their edges then soften by at most 1/32 of their width), at most MAX_REDUCTION times smaller.
REDUCED_RADIUS = 16  # px
MAX_REDUCTION = 8


def render_reduced(
    strokes: Strokes, x0: int, y0: int, width: int, height: int, factor: int
) -> np.ndarray:
    """The strokes drawn `factor` times smaller and scaled up to the layer (straight RGBA)."""
    small = (-(-width // factor), -(-height // factor))
    premultiplied = np.zeros((small[1], small[0], 4), np.uint8)
    surface = raster_surface(premultiplied)
    canvas = surface.getCanvas()
    canvas.scale(1 / factor, 1 / factor)
    canvas.translate(-x0, -y0)
    draw_strokes(canvas, strokes)
    picture = Image.fromarray(premultiplied, "RGBa")
    picture = picture.resize((small[0] * factor, small[1] * factor), Image.Resampling.BILINEAR)
    return np.asarray(picture.crop((0, 0, width, height)).convert("RGBA")).copy()


def warm() -> None:
    """Start the helper processes now (they take a moment to import), when there are cores."""
    helpers = threads() - 1
    if helpers >= 1:
        with _lock:
            try:
                _start(helpers)
            except OSError:
                _stop_helpers()


def cuts(strokes: Strokes, y0: int, height: int, parts: int) -> list[int]:
    """Rows that split the layer into `parts` bands with about as many strokes each."""
    middle = np.sort(strokes.points[..., 1].mean(axis=1) - y0)
    picks = [middle[len(middle) * i // parts] for i in range(1, parts)]
    inner = sorted(min(max(int(pick), 1), height - 1) for pick in picks)
    return [0, *inner, height]


class HelperFailed(Exception):
    """A helper process could not draw its band."""


def _draw_in_bands(
    strokes: Strokes, x0: int, y0: int, width: int, height: int, helpers: int
) -> np.ndarray:
    layer = _shared.layer(height, width)
    layer.fill(0)
    bounds = cuts(strokes, y0, height, helpers + 1)
    busy = []
    for helper, top, bottom in zip(_start(helpers), bounds[1:-1], bounds[2:]):
        if bottom > top:
            part = strokes.take(strokes.reaching(y0 + top, y0 + bottom))
            job = (_shared.path, _shared.size, part, x0, y0, width, height, top, bottom)
            pickle.dump(job, helper.stdin, pickle.HIGHEST_PROTOCOL)
            helper.stdin.flush()
            busy.append(helper)
    try:
        render_rows(strokes, x0, y0, layer, 0, bounds[1])
    finally:
        answers = [pickle.load(helper.stdout) for helper in busy]
    for answer in answers:
        if answer is not None:
            raise HelperFailed(answer)
    return layer.copy()


class _LayerFile:
    """The layer the bands are drawn into: a file only this user can read, mapped by all."""

    def __init__(self) -> None:
        self.path = ""
        self.size = 0
        self.map: mmap.mmap | None = None

    def layer(self, height: int, width: int) -> np.ndarray:
        wanted = height * width * 4
        if wanted > self.size:
            self.close()
            # In memory where the system has a place for it; mode 0600 either way.
            memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
            handle, self.path = tempfile.mkstemp(prefix="paintstep-layer-", dir=memory)
            os.ftruncate(handle, wanted)
            self.map = mmap.mmap(handle, wanted)
            os.close(handle)
            self.size = wanted
        return np.ndarray((height, width, 4), np.uint8, buffer=self.map)

    def close(self) -> None:
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:  # a layer still looks at it: unmapped when that goes
                pass
            self.map = None
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path, self.size = "", 0


_lock = threading.Lock()  # one drawing at a time uses the helpers and the layer file
_shared = _LayerFile()
_helpers: list[subprocess.Popen] = []


def _start(count: int) -> list[subprocess.Popen]:
    """The helper processes, started when first wanted. They are plain `python -m` processes
    (not multiprocessing's), so that a script calling the engine is never run again in them."""
    global _helpers
    if len(_helpers) != count or any(helper.poll() is not None for helper in _helpers):
        _stop_helpers()
        command = [sys.executable, "-m", __name__]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        _helpers = [subprocess.Popen(command, **pipes) for _ in range(count)]
    return _helpers


def _close() -> None:
    _stop_helpers()
    _shared.close()


def _stop_helpers() -> None:
    global _helpers
    for helper in _helpers:
        try:
            helper.stdin.close()  # the helper ends when its input does
            helper.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            helper.kill()
    _helpers = []


atexit.register(_close)


def _serve() -> None:
    """A helper process: draw the bands asked for on stdin, answer None (or the error)."""
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    mapped: dict[tuple[str, int], mmap.mmap] = {}
    while True:
        try:
            path, size, strokes, x0, y0, width, height, top, bottom = pickle.load(jobs)
        except EOFError:
            return
        try:
            if (path, size) not in mapped:
                for old in mapped.values():
                    old.close()
                with open(path, "r+b") as file:
                    mapped = {(path, size): mmap.mmap(file.fileno(), size)}
            layer = np.ndarray((height, width, 4), np.uint8, buffer=mapped[(path, size)])
            render_rows(strokes, x0, y0, layer, top, bottom)
            answer = None
        except Exception as error:  # said to the engine, which draws the step itself
            answer = f"{type(error).__name__}: {error}"
        pickle.dump(answer, answers)
        answers.flush()


if __name__ == "__main__":
    _serve()

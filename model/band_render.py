"""Drawing a large step layer on several processes at once, a band of rows each.

skia holds Python's interpreter lock while it draws, so threads cannot share the drawing; other
processes can. A large layer is always drawn as BANDS bands of rows, each clipped to its own
rows on a surface the size of the whole layer (brush.render_rows), whichever process draws it:
so the pixels are the same on one core and on many. Helper processes draw their bands into a
layer file they all map; when there is no helper (PAINTSTEP_THREADS=1, one core, no room for
the file, a helper that keeps failing) this process draws every band into memory of its own.
"""

from __future__ import annotations

import atexit
import mmap
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np
from paintstep.bands import threads

from .brush import Strokes, forget_scratch, render_rows

PARALLEL_AREA = 1 << 20  # px: a smaller layer is drawn whole, faster than it is shared out
BANDS = 4  # a larger one in this many bands of rows, with about as many strokes each
MAX_FAILURES = 2  # helpers that failed this often are not started again by this process


def render_layer(strokes: Strokes, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The strokes on a clear layer of this size placed at (x0, y0), as straight RGBA: a large
    layer drawn in bands, on all cores (unlike brush.render_layer, which draws it whole)."""
    if width * height < PARALLEL_AREA or len(strokes) == 0:
        out = np.zeros((height, width, 4), np.uint8)
        render_rows(strokes, x0, y0, out)
        return out
    bounds = cuts(strokes, y0, height, BANDS)
    bands = [(top, bottom) for top, bottom in zip(bounds, bounds[1:]) if bottom > top]
    processes = min(threads(), len(bands))
    if processes > 1 and _failures < MAX_FAILURES:
        with _lock:
            layer = _draw_shared(strokes, x0, y0, width, height, bands, processes)
        if layer is not None:
            return layer
    out = np.zeros((height, width, 4), np.uint8)
    _draw_bands(strokes, x0, y0, out, bands)
    return out


def _draw_shared(strokes, x0, y0, width, height, bands, processes) -> np.ndarray | None:
    """The layer drawn by this process and helpers, or None when they cannot."""
    global _failures
    shares = [
        bands[len(bands) * i // processes : len(bands) * (i + 1) // processes]
        for i in range(processes)
    ]
    try:
        if _start(processes - 1):
            _shared.close()  # new helpers have not mapped the old file, which has no name
        layer = _shared.layer(height, width)
        layer.fill(0)
        _draw_on_helpers(strokes, x0, y0, layer, shares[0], shares[1:])
        return layer.copy()
    except (OSError, EOFError, pickle.PickleError, HelperFailed):
        _failures += 1  # a helper died, or the file found no room: drawn here instead
        _stop_helpers()
        _shared.close()
        return None
    except BaseException:
        _stop_helpers()  # interrupted while they drew: their answers would come out of step
        raise


def _draw_bands(strokes: Strokes, x0: int, y0: int, layer: np.ndarray, bands) -> None:
    for top, bottom in bands:
        render_rows(strokes, x0, y0, layer, top, bottom, clip=True)


def warm() -> None:
    """Start the helper processes now (they take a moment to import), when there are cores."""
    helpers = min(threads(), BANDS) - 1
    if helpers >= 1 and _failures < MAX_FAILURES:
        with _lock:
            try:
                _start(helpers)
            except OSError:
                _stop_helpers()


def release() -> None:
    """Give back what drawing large layers holds (the helpers, the layer file, this thread's
    scratch surface) once a process is painted: a server keeps running between jobs."""
    with _lock:
        _stop_helpers()
        _shared.close()
    forget_scratch()


def cuts(strokes: Strokes, y0: int, height: int, parts: int) -> list[int]:
    """Rows that split the layer into `parts` bands with about as many strokes each."""
    middle = np.nan_to_num(strokes.points[..., 1].mean(axis=1) - y0)
    middle = np.sort(middle)
    picks = [middle[len(middle) * i // parts] for i in range(1, parts)]
    inner = sorted(min(max(int(pick), 1), height - 1) for pick in picks)
    return [0, *inner, height]


class HelperFailed(Exception):
    """A helper process could not draw its band."""


def _draw_on_helpers(strokes, x0, y0, layer, mine, theirs) -> None:
    """Send each helper its bands, draw mine meanwhile, and wait for all of them."""
    height, width = layer.shape[:2]
    busy = []
    for helper, bands in zip(_helpers, theirs):
        top, bottom = bands[0][0], bands[-1][1]
        part = strokes.take(strokes.reaching(y0 + top, y0 + bottom))
        job = (_shared.path, _shared.size, part, x0, y0, width, height, bands)
        pickle.dump(job, helper.stdin, pickle.HIGHEST_PROTOCOL)
        helper.stdin.flush()
        busy.append(helper)
    if _shared.named:
        # A new file: each helper says when it has it mapped, and then it loses its name,
        # so that a kill -9 a moment later leaves nothing in /dev/shm.
        for helper in busy:
            if pickle.load(helper.stdout) != MAPPED:
                raise HelperFailed("a helper could not map the layer file")
        _shared.forget()
    _draw_bands(strokes, x0, y0, layer, mine)
    answers = [pickle.load(helper.stdout) for helper in busy]
    for answer in answers:
        if answer is not None:
            raise HelperFailed(answer)


class _LayerFile:
    """The layer the bands are drawn into: a file only this user can read, mapped by all."""

    def __init__(self) -> None:
        self.path = ""
        self.named = False  # whether the file still has its name
        self.size = 0
        self.map: mmap.mmap | None = None

    def layer(self, height: int, width: int) -> np.ndarray:
        wanted = height * width * 4
        if wanted > self.size:
            self.close()
            # In memory where the system has a place for it; mode 0600 either way.
            memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
            handle, self.path = tempfile.mkstemp(prefix="paintstep-layer-", dir=memory)
            self.named = True
            try:
                # Room taken now: a full /dev/shm (64 MB in a container) would otherwise kill
                # the process with SIGBUS at the first write.
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(handle, 0, wanted)
                else:
                    os.ftruncate(handle, wanted)
                self.map = mmap.mmap(handle, wanted)
            finally:
                os.close(handle)
            self.size = wanted
        return np.ndarray((height, width, 4), np.uint8, buffer=self.map)

    def forget(self) -> None:
        """Take the file's name away once every process has it mapped: nothing is left behind
        in /dev/shm however the processes end."""
        if self.named:
            try:
                os.unlink(self.path)  # the helpers know it by this name still
            except OSError:
                pass
            self.named = False

    def close(self) -> None:
        # The map is dropped, not closed: an array may still look at it, and closing a map
        # under an array crashes the process. It is unmapped when the last array goes.
        self.forget()
        self.map = None
        self.path, self.size = "", 0


_lock = threading.Lock()  # one drawing at a time uses the helpers and the layer file
_shared = _LayerFile()
_helpers: list[subprocess.Popen] = []
_failures = 0


def _start(count: int) -> bool:
    """Have at least `count` helper processes running; whether they had to be started. They
    are plain `python -m` processes (not multiprocessing's), so that a script calling the
    engine is never run again in them, in a session of their own, so that Ctrl-C in a
    terminal reaches only the engine's process, which ends them by closing their input."""
    global _helpers
    if len(_helpers) >= count and all(helper.poll() is None for helper in _helpers):
        return False
    _stop_helpers()
    command = [sys.executable, "-m", __name__]
    options = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    if os.name == "posix":
        options["start_new_session"] = True
    try:
        for _ in range(count):
            _helpers.append(subprocess.Popen(command, **options))
    except OSError:
        _stop_helpers()
        raise
    return True


def _close() -> None:
    # At exit a server's worker thread may still be drawing: wait for it a little.
    if _lock.acquire(timeout=5):
        try:
            _stop_helpers()
            _shared.close()
        finally:
            _lock.release()


def _stop_helpers() -> None:
    global _helpers
    for helper in _helpers:
        try:
            helper.stdin.close()  # the helper ends when its input does
            helper.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            helper.kill()
            helper.wait()
    _helpers = []


atexit.register(_close)


def _serve() -> None:
    """A helper process: draw the bands asked for on stdin, answer None (or the error)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine's process handles Ctrl-C
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    mapped: dict[tuple[str, int], mmap.mmap] = {}
    while True:
        try:
            path, size, strokes, x0, y0, width, height, bands = pickle.load(jobs)
        except EOFError:
            return
        try:
            try:
                if (path, size) not in mapped:
                    mapped.clear()  # an earlier file is unmapped when its map goes
                    with open(path, "r+b") as file:
                        mapped[(path, size)] = mmap.mmap(file.fileno(), size)
                    say(MAPPED, answers)  # the engine takes the file's name away now
                layer = np.ndarray((height, width, 4), np.uint8, buffer=mapped[(path, size)])
                _draw_bands(strokes, x0, y0, layer, bands)
                answer = None
            except Exception as error:  # said to the engine, which draws the bands itself
                answer = f"{type(error).__name__}: {error}"
            say(answer, answers)
        except OSError:  # the engine's process is gone: so is the reason to draw
            return


def say(answer, answers) -> None:
    pickle.dump(answer, answers)
    answers.flush()


MAPPED = "mapped"  # a helper's first answer for a new layer file, before it draws


if __name__ == "__main__":
    _serve()

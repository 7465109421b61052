"""Work on a picture a band of rows at a time, on all of the machine's cores.

numpy's array operations and Pillow's filters let go of Python's interpreter lock while they
work, so bands of one picture go through them side by side on threads. Each band's result is
what the whole picture's would be there, so the output never depends on how many cores run it.
PAINTSTEP_THREADS=1 runs everything on the calling thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MAX_THREADS = 8  # more threads than this only wait on memory
LEAST_ROWS = 64  # a band thinner than this is not worth a thread


def threads() -> int:
    """How many threads share a picture's bands: the cores this process may run on."""
    wanted = os.environ.get("PAINTSTEP_THREADS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return min(int(wanted), MAX_THREADS)
    if hasattr(os, "sched_getaffinity"):
        return min(len(os.sched_getaffinity(0)), MAX_THREADS)
    return min(os.cpu_count() or 1, MAX_THREADS)  # macOS and Windows


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
PREFIX = "paintstep-band"


def in_bands(rows: int, work: Callable[[int, int], None], least: int = LEAST_ROWS) -> None:
    """Call work(top, bottom) for bands of rows that together cover 0..rows, at once.

    `work` must touch only its own rows of whatever it writes. The first band runs on the
    calling thread; an error in any band is raised here once all of them are done.
    """
    global _pool
    count = min(threads(), max(1, rows // least))
    # A band's own work that splits into bands again runs on its thread: waiting on the pool
    # from inside the pool could wait for ever.
    if count <= 1 or threading.current_thread().name.startswith(PREFIX):
        if rows > 0:
            work(0, rows)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_THREADS - 1, thread_name_prefix=PREFIX)
    bounds = [rows * i // count for i in range(count + 1)]
    others = [_pool.submit(work, top, bottom) for top, bottom in zip(bounds[1:-1], bounds[2:])]
    try:
        work(bounds[0], bounds[1])
    finally:
        for band in others:
            band.result()

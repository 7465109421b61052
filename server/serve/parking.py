"""Waiting jobs' pictures on disk, not in memory (issue 14): a 4096 px job with a target holds
~150 MB of pixels, and up to 64 jobs may wait.

A job whose pictures take `PARK_BYTES` or more is handed to the parking thread when it is
queued; that thread writes its canvas, target and mask into `cache/queued/JOB/` and lets go of
them. The worker that takes the job reads them back (`unpark`) and removes the files; a fetch
of a waiting job reads them without removing them (`request_of`). Whichever thread comes
first wins: a job a worker has taken is never parked, and a job being parked is read from
memory. Only the main thread creates and ends jobs; these functions take the job's lock.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import shutil
import threading
from pathlib import Path

import numpy as np

from ..process import PaintRequest
from .jobs import Job

log = logging.getLogger("paintstep.serve")

PARK_BYTES = 4 << 20  # smaller jobs' pictures stay in memory: writing them costs more
IMAGES = ("canvas", "target", "mask")


class Parking:
    """The thread that writes waiting jobs' pictures into `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)  # a previous run's jobs are not queued now
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="paintstep-parking", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, job: Job) -> None:
        if job.picture_bytes >= PARK_BYTES:
            self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=5)

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                park(job, self.folder / job.id)
            except OSError as error:  # a full disk: the job waits in memory, as before
                log.warning("job %s: its pictures stay in memory (%s)", job.id, error)
                shutil.rmtree(self.folder / job.id, ignore_errors=True)


def park(job: Job, folder: Path) -> None:
    """Write the job's pictures into `folder` and drop them from memory, unless a worker has
    taken the job (or it ended) meanwhile."""
    with job.lock:
        request = job.request
        if request is None or job.taken:
            return
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    for name in IMAGES:
        image = getattr(request, name)
        if image is not None:
            np.save(partial / f"{name}.npy", image, allow_pickle=False)
    partial.rename(folder)
    with job.lock:
        if job.taken or job.request is not request:
            shutil.rmtree(folder, ignore_errors=True)
            return
        job.request = None
        job.parked = folder
        job.parked_request = dataclasses.replace(request, canvas=None, target=None, mask=None)


def read_parked(job: Job) -> PaintRequest | None:
    """The job's request with its pictures read back from disk (under the job's lock)."""
    if job.parked is None or job.parked_request is None:
        return None
    images = {}
    for name in IMAGES:
        path = job.parked / f"{name}.npy"
        images[name] = np.load(path, allow_pickle=False) if path.exists() else None
    return dataclasses.replace(job.parked_request, **images)


def unpark(job: Job) -> PaintRequest | None:
    """For the worker that paints the job: its request, in memory again, the files gone."""
    with job.lock:
        job.taken = True
        if job.request is None and job.parked is not None:
            job.request = read_parked(job)
            discard(job)
        return job.request


def request_of(job: Job) -> PaintRequest | None:
    """For a fetcher: the job's request, wherever its pictures are; None once it has ended."""
    with job.lock:
        return job.request if job.request is not None else read_parked(job)


def discard(job: Job) -> None:
    """Forget the job's pictures on disk (it is painted, cancelled or deleted)."""
    if job.parked is not None:
        shutil.rmtree(job.parked, ignore_errors=True)
    job.parked = None
    job.parked_request = None

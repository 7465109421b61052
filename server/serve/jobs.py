"""The server's jobs: what each holds, the store of them in the cache, and the queue to paint.

Only the server's main thread changes a `Job` and the `JobStore`; worker threads read the job
they paint (its request, its cancel event) and tell the main thread the rest (`worker.py`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..process import PaintError, PaintRequest, StepLayer
from ..result import JobState, load_result, save_manifest
from ..wire.protocol import Message, ProtocolError, image_field

log = logging.getLogger("paintstep.serve")

# Where a message came from: the client's routing id on the local socket, or the gateway's
# and then the client's on the gateway's TCP socket.
Route = tuple[bytes, ...]


@dataclass
class Job:
    id: str
    folder: Path
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # the client's own notes on the job
    engine: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # the engine's, as it read them
    steps: int = 0
    width: int = 0
    height: int = 0
    created: float = field(default_factory=time.time)
    state: JobState = JobState.QUEUED
    steps_done: int = 0  # sent to clients
    stored: int = 0  # written to the job's folder
    recent: dict[int, Message] = field(default_factory=dict)  # sent, not yet stored
    request: PaintRequest | None = None  # None once ended, or while parked
    picture_bytes: int = 0  # its request's pixels, in memory or parked on disk
    # While it waits, a large job's pictures are on disk (parking.py); under `lock`:
    parked: Path | None = None  # their folder
    parked_request: PaintRequest | None = None  # the request without them
    taken: bool = False  # a worker has it: never parked from then on
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancel: threading.Event = field(default_factory=threading.Event)
    subscribers: set[Route] = field(default_factory=set)
    owner: Route = ()  # the client that asked for it
    # Clients whose fetch is being read from the cache: what the job said meanwhile, for after.
    fetching: dict[Route, list[Message]] = field(default_factory=dict)
    deleting: bool = False  # removed once its worker has stopped

    def summary(self) -> dict[str, Any]:
        """The job as `list_jobs` describes it."""
        return {
            "job": self.id,
            "name": self.name,
            "meta": self.meta,
            "state": self.state.value,
            "steps": self.steps,
            "steps_done": self.steps_done,
            "width": self.width,
            "height": self.height,
            "engine": self.engine,
            "created": self.created,
        }

    @property
    def ended(self) -> bool:
        return self.state.ended

    def step_message(self, step: StepLayer) -> Message:
        buffers: list[Any] = []
        content = {  # plain ints: an engine's numpy integers cannot be packed
            "index": int(step.index),
            "steps": self.steps,
            "x": int(step.x),
            "y": int(step.y),
            "layer": image_field(step.pixels, buffers),
            "thumbnail": image_field(step.thumbnail, buffers),
        }
        if step.stage is not None:  # older clients ignore it
            content["stage"] = str(step.stage)
        return Message("step", content, buffers, job=self.id)

    def done_message(self, re: str | None = None) -> Message:
        content = {"state": self.state.value, "steps": self.steps_done}
        return Message("done", content, re=re, job=self.id)


class JobStore:
    """Every job the server knows, each with its lean result folder under `folder`; ended jobs
    are removed after `days`, and the oldest while the folders take more than `most_bytes`."""

    def __init__(self, folder: Path, days: float, most_bytes: int) -> None:
        self.folder = folder
        self.days = days
        self.most_bytes = most_bytes
        self.jobs: dict[str, Job] = {}

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self.jobs.values()))

    def __len__(self) -> int:
        return len(self.jobs)

    def add(self, job: Job) -> None:
        self.jobs[job.id] = job

    def get(self, job_id: str | None) -> Job:
        """The job `job_id`; an `unknown_job` error where there is none."""
        job = self.jobs.get(job_id or "")
        if job is None:
            raise ProtocolError(
                "unknown_job",
                f"There is no job {job_id!r} on this server; list the jobs to see which there are.",
            )
        return job

    def find(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def folder_of(self, job_id: str) -> Path:
        return self.folder / job_id

    def newest_first(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda job: job.created, reverse=True)

    def load(self) -> None:
        """Jobs a previous run left in the cache; the ones it was painting were interrupted."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for folder in self.folder.iterdir():
            try:
                self.load_job(folder)
            except Exception as error:  # a damaged folder must not keep the server from starting
                log.warning("skipped job folder %s, which cannot be read: %s", folder, error)
        log.info("%d jobs in the cache at %s", len(self.jobs), self.folder)

    def load_job(self, folder: Path) -> Job:
        result = load_result(folder)
        manifest = result.manifest
        if not isinstance(manifest.get("steps"), list):
            raise PaintError("its manifest lists no steps")
        job = Job(
            id=folder.name,
            folder=folder,
            name=manifest.get("name", ""),
            meta=manifest.get("meta", {}),
            engine=manifest.get("engine", ""),
            steps=manifest.get("steps_planned", len(result.steps)),
            width=manifest.get("width", 0),
            height=manifest.get("height", 0),
            created=manifest.get("created", folder.stat().st_mtime),
            state=result.state,
            steps_done=len(result.steps),
            stored=len(result.steps),
        )
        if not job.state.ended:
            job.state = JobState.INTERRUPTED
            manifest["state"] = JobState.INTERRUPTED.value
            manifest["message"] = "The server stopped while painting this job."
            save_manifest(folder, manifest)
        self.jobs[job.id] = job
        return job

    def prune(self) -> None:
        """Remove ended jobs older than `days`, then the oldest while the cache is too big;
        never the newest (a job larger than the whole cache is kept until the next one ends)."""
        cutoff = time.time() - self.days * 86400
        ended = sorted((j for j in self.jobs.values() if j.ended), key=lambda j: j.created)
        for job in ended:
            if job.created < cutoff:
                self.remove(job)
        ended = ended[:-1]
        sizes = {j.id: folder_size(j.folder) for j in ended if j.id in self.jobs}
        total = sum(sizes.values())
        for job in ended:
            if total <= self.most_bytes:
                break
            if job.id in self.jobs:
                total -= sizes.get(job.id, 0)
                self.remove(job)

    def remove(self, job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
        self.jobs.pop(job.id, None)
        log.info("removed job %s", job.id)


class Turns:
    """Jobs waiting to be painted: a queue for each client, the clients served in turn."""

    def __init__(self) -> None:
        self.lanes: dict[Route, deque[Job]] = {}
        self.served: dict[Route, int] = {}  # the turn at which each client was last served
        self.turn = 0
        self.changed = threading.Condition()
        self.closed = False

    def put(self, owner: Route, job: Job) -> None:
        with self.changed:
            self.lanes.setdefault(owner, deque()).append(job)
            self.changed.notify_all()

    def get(self, takes: Callable[[Job], bool] = lambda job: True) -> Job | None:
        """The next job `takes` accepts, of the client served longest ago (or never); None once
        closed."""
        with self.changed:
            while not self.closed:
                lanes = [(owner, lane) for owner, lane in self.lanes.items() if takes(lane[0])]
                if lanes:
                    owner, lane = min(lanes, key=lambda item: self.served.get(item[0], 0))
                    self.turn += 1
                    self.served[owner] = self.turn
                    job = lane.popleft()
                    if not lane:
                        del self.lanes[owner], self.served[owner]
                    return job
                self.changed.wait()
            return None

    def waiting(self) -> list[Job]:
        with self.changed:
            return [job for lane in self.lanes.values() for job in lane]

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()


def request_bytes(request: PaintRequest | None) -> int:
    if request is None:
        return 0
    images = (request.canvas, request.target, request.mask)
    return sum(image.nbytes for image in images if image is not None)


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

"""The server's worker threads, which paint jobs, and its fetchers, which read jobs back from
the cache; both tell the main thread what happened as `JobEvent`s and `FetchEvent`s through
`Events`, and only the main thread touches the jobs' records and the sockets."""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..engines import get_engine
from ..process import PaintError, StepLayer
from ..result import JobState, ResultWriter, load_result, run_info
from ..wire.protocol import Message, image_field
from ..writer_process import WriterGone, WriterProcess
from .jobs import Job, Route, Turns
from .parking import request_of, unpark

log = logging.getLogger("paintstep.serve")

SMALL_PIXELS = 512 * 512  # strokes jobs this small have a worker of their own: never stuck behind
FETCHERS = 2  # threads that read fetched jobs from the cache
READ_AHEAD = 4  # messages a fetcher reads before the main thread has sent them: not the whole job


@dataclass
class JobEvent:
    """What a worker says of the job it paints: a message for the job's clients, and what
    changed in its record (its state, the steps sent, the steps on disk)."""

    job: str
    message: Message | None = None
    state: JobState | None = None
    steps_done: int | None = None  # `message` is that step
    stored: int | None = None


@dataclass
class FetchEvent:
    """What a fetcher read for one client; `message` None: the fetch is all sent."""

    job: str
    route: Route
    message: Message | None = None
    sent: threading.Semaphore | None = None  # released once it is sent
    fetch: Fetch | None = None  # the fetch it belongs to


class Events:
    """Events from the worker threads to the main thread: a queue, and a socket pair whose
    bytes say that the queue has something (the main thread polls it with its ZeroMQ sockets)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[JobEvent | FetchEvent] = queue.SimpleQueue()
        self.bell, self.ear = socket.socketpair()
        self.bell.setblocking(False)
        self.ear.setblocking(False)

    def put(self, event: JobEvent | FetchEvent) -> None:
        self.queue.put(event)
        try:
            self.bell.send(b"\0")
        except OSError:  # full of rings already (it will look), or closed: the server stopped
            pass

    def fileno(self) -> int:
        return self.ear.fileno()

    def take(self) -> Iterator[JobEvent | FetchEvent]:
        """The events so far, in the order they came."""
        try:
            while self.ear.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                yield self.queue.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        self.bell.close()
        self.ear.close()


def is_small(job: Job) -> bool:
    return job.engine == "strokes" and job.width * job.height <= SMALL_PIXELS


def work(turns: Turns, events: Events, takes: Callable[[Job], bool] = lambda job: True) -> None:
    """A worker thread: paint the jobs `takes` accepts, in turn, until the turns close."""
    while (job := turns.get(takes)) is not None:
        paint(job, events)


def paint(job: Job, events: Events) -> None:
    """Run one job's engine, writing its steps to the cache and reporting each."""

    def report(message: Message | None = None, **update: Any) -> None:
        events.put(JobEvent(job.id, message, **update))

    if job.cancel.is_set():  # its pictures are not read back
        with job.lock:
            job.taken = True
        content = {"state": JobState.CANCELLED.value, "steps": 0}
        report(Message("done", content, job=job.id), state=JobState.CANCELLED)
        return
    request = unpark(job)
    if request is None:
        return
    content = {"done": 0.0, "stage": "planning"}
    report(Message("progress", content, job=job.id), state=JobState.RUNNING)
    info = run_info(
        job.engine, request, job.options, name=job.name, meta=job.meta, created=job.created
    )
    writer, process = lean_writer(job, request.first_frame(), info, report)
    done = 0
    try:
        engine = get_engine(job.engine)

        reached = [0.0]  # progress only goes forward, whoever reports it

        def progress(share: float, stage: str) -> None:
            reached[0] = max(reached[0], share)
            update = {"done": round(reached[0], 4), "stage": stage}
            report(Message("progress", update, job=job.id))

        for step in engine.paint(request, job.cancel, progress):
            done = step.index
            # Clients get the step first; the cache has it a moment later.
            report(job.step_message(step), steps_done=done)
            writer.add(step)
            if process is None:  # (a writer process says when each step is stored)
                report(stored=done)
            progress(done / request.steps, "painting")
        cut = job.cancel.is_set() and done < request.steps
        state = JobState.CANCELLED if cut else JobState.FINISHED
        if state == JobState.FINISHED:
            writer.finish()
        else:
            writer.end(state)
        log.info("job %s: %s after %d steps", job.id, state, done)
        report(Message("done", {"state": state.value, "steps": done}, job=job.id), state=state)
    except PaintError as error:
        with contextlib.suppress(PaintError, OSError):  # a full disk, a writer gone
            writer.end(JobState.FAILED, str(error))
        content = {"code": "bad_request", "message": str(error)}
        report(Message("error", content, job=job.id), state=JobState.FAILED)
    except Exception as error:
        log.exception("job %s failed", job.id)
        with contextlib.suppress(PaintError, OSError):
            writer.end(JobState.FAILED, f"The engine failed: {error}")
        text = f"The {job.engine} engine failed ({error}); see the server's log."
        content = {"code": "engine_failed", "message": text}
        report(Message("error", content, job=job.id), state=JobState.FAILED)
    finally:
        if process is not None:
            process.close()


def lean_writer(job: Job, start, info: dict[str, Any], report) -> tuple[Any, WriterProcess | None]:
    """The job's cache folder's writer, and its process: a large job's layers and thumbnails
    are encoded in a process of their own (at 4096 px the writing was 46 % of the engine's time
    on the worker's thread), a small one's on the worker's thread (a process's start would cost
    it more than it saves)."""
    process = None if is_small(job) else WriterProcess.start()
    if process is not None:

        def stored(index: int) -> None:
            report(stored=index)

        try:
            return process.open(job.folder, start, info, lean=True, stored=stored), process
        except WriterGone:
            process.close()
        except BaseException:
            process.close()
            raise
    return ResultWriter(job.folder, start, info, lean=True), None


@dataclass
class Fetch:
    """A fetch_job to read from the cache: what the job had when it was asked."""

    job: Job
    route: Route
    re: str
    state: dict[str, Any]
    after: int  # the steps it sends start after this one
    upto: int  # steps sent by then
    recent: dict[int, Message]  # those of them not yet stored
    done: Message | None  # where the job had ended
    backlog: list[Message]  # what the job says meanwhile: job.fetching[route] while current


def read_fetches(fetches: queue.Queue[Fetch | None], events: Events) -> None:
    """A fetcher thread: read each fetch from the cache until it gets None."""
    sent = threading.Semaphore(READ_AHEAD)
    while (fetch := fetches.get()) is not None:
        read_fetch(fetch, events, sent)


def read_fetch(fetch: Fetch, events: Events, sent: threading.Semaphore) -> None:
    """Send a fetching client the job's `accepted`, its steps so far and how it ended."""
    job = fetch.job

    def send(message: Message | None) -> None:
        sent.acquire()
        events.put(FetchEvent(job.id, fetch.route, message, sent, fetch))

    try:
        buffers: list[Any] = []
        result = None
        if (job.folder / "manifest.json").exists():
            result = load_result(job.folder)
            fetch.state["start"] = image_field(result.start(), buffers)
        elif (request := request_of(job)) is not None:  # waiting: its pictures, wherever
            fetch.state["start"] = image_field(request.first_frame(), buffers)
        send(Message("accepted", fetch.state, buffers, re=fetch.re, job=job.id))
        for index in range(fetch.after + 1, fetch.upto + 1):
            if index in fetch.recent:
                send(fetch.recent[index])
            elif result is not None:
                step = result.layer(index)
                thumb = result.thumbnail(index)
                step = StepLayer(index, step.x, step.y, step.pixels, thumb, step.stage)
                send(job.step_message(step))
        if fetch.done is not None:
            send(fetch.done)
    except (PaintError, OSError) as error:  # deleted meanwhile, or the cache is damaged
        log.warning("job %s: cannot read it for a fetch: %s", job.id, error)
        text = f"Job {job.id} cannot be read from the server's cache ({error})."
        send(Message("error", {"code": "unknown_job", "message": text}, re=fetch.re))
    finally:
        send(None)

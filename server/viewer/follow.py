"""The viewer on a server: its jobs listed live, and the chosen one followed as it is painted
(each on a thread of its own, what it finds handed to the window on the UI thread)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..wire.errors import PaintError
from .model import Process, Worker
from .window import Viewer

JOB_LIST_SECONDS = 1.0  # how often a viewer on a server asks for its jobs


def client_for(address: str, keys: str | None):
    from ..wire.client import Client
    from ..wire.keys import load_client_keys

    return Client(address, keys=load_client_keys(Path(keys)) if keys else None)


class Follower(Worker):
    """Fetches a job from a server on a thread of its own; what arrives goes to the Process on
    the UI thread."""

    def __init__(
        self, process: Process, address: str, job: str | None, keys: str | None = None
    ) -> None:
        super().__init__()
        self.process, self.address, self.job, self.keys = process, address, job, keys
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def on_started(self, start: np.ndarray, total: int) -> None:
        self.process.start, self.process.total = start, total

    def run(self) -> None:
        from ..cli.remote import step_layers
        from ..wire.client import ServerError, ServerLost

        note = self.process.set_note
        try:
            with client_for(self.address, self.keys) as client:
                job = self.job or next(iter(j["job"] for j in client.list_jobs()), None)
                if job is None:
                    self.post(note, f"The server at {self.address} has no jobs yet.")
                    return

                def accepted(event) -> None:
                    self.post(self.on_started, event.start.array().copy(), event.steps)
                    self.post(note, f"Job {job}: {event.state}, following it live.")

                def done(event) -> None:
                    self.post(note, f"Job {job}: {event.steps} steps, {event.state}.")

                for layer in step_layers(lambda: client.fetch(job), accepted, done=done):
                    self.post(self.process.add_step, layer)
        except (ServerError, ServerLost, PaintError) as error:
            self.post(note, str(error))
        except Exception as error:  # keep the window alive and say what happened
            self.post(note, f"Cannot follow the job at {self.address}: {error}")


class JobList(Worker):
    """Asks a server for its jobs every JOB_LIST_SECONDS on a thread of its own; each answer
    goes to `listed` on the UI thread, each failure to `failed`."""

    def __init__(self, address: str, keys: str | None, listed, failed) -> None:
        super().__init__()
        self.address, self.keys, self.listed, self.failed = address, keys, listed, failed
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop asking; waits for the thread so that no answer comes to a closed window."""
        self.stopped.set()
        self.thread.join(timeout=10)

    def run(self) -> None:
        from ..wire.client import ServerError, ServerLost

        try:
            with client_for(self.address, self.keys) as client:
                while not self.stopped.wait(JOB_LIST_SECONDS):
                    try:
                        self.post(self.listed, client.list_jobs())
                    except ServerLost as error:  # busy or restarting: ask again later
                        self.post(self.failed, str(error))
        except (ServerError, ServerLost, PaintError) as error:
            if not self.stopped.is_set():
                self.post(self.failed, str(error))


def job_label(entry: dict) -> str:
    label = f"{entry['name'] or entry['job']}: {entry['steps_done']}/{entry['steps']} steps"
    return f"{label} ({entry['state']})"


def follow(address: str, job: str | None = None, keys: str | None = None) -> Viewer:
    """A viewer window on a server's jobs, listed live: the chosen one is followed as it is
    painted (the one named, or else the newest, until another is chosen)."""
    from ..wire.client import ServerError, ServerLost

    window = Viewer(Process())
    jobs: list[dict] = []
    try:
        with client_for(address, keys) as client:
            jobs = client.list_jobs()
    except (ServerError, ServerLost, PaintError) as error:
        window.process.set_note(str(error))
        return window
    ids: list[str] = []
    followed: dict[str, str | None] = {"job": None, "chosen": job}

    def watch(index: int) -> None:
        if 0 <= index < len(ids) and ids[index] != followed["job"]:
            followed["job"] = ids[index]
            process = Process()
            window.set_process(process)
            window.follower = Follower(process, address, ids[index], keys)

    def choose(index: int) -> None:
        if 0 <= index < len(ids):
            followed["chosen"] = ids[index]
            watch(index)

    def update(listed: list[dict]) -> None:
        """New jobs at the top, every label as the server says now."""
        new = [entry for entry in listed if entry["job"] not in ids]
        window.jobs.blockSignals(True)
        for place, entry in enumerate(new):
            ids.insert(place, entry["job"])
            window.jobs.insertItem(place, job_label(entry))
        wanted = followed["chosen"] if followed["chosen"] in ids else (ids[0] if ids else None)
        for entry in listed:
            window.jobs.setItemText(ids.index(entry["job"]), job_label(entry))
        if wanted is not None:
            window.jobs.setCurrentIndex(ids.index(wanted))
        window.jobs.blockSignals(False)
        window.jobs.setVisible(bool(ids))
        if wanted is not None:
            watch(ids.index(wanted))

    window.jobs.currentIndexChanged.connect(choose)
    update(jobs)
    if not jobs:
        window.process.set_note(f"The server at {address} has no jobs yet.")
    window.job_list = JobList(address, keys, update, lambda note: window.process.set_note(note))
    return window

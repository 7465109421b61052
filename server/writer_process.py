"""A result folder written by a process of its own, on another core than the engine's.

`paintstep paint` spends as much of its time writing (PNG, GIF and MP4 encoding, compositing the
frames) as painting. On a thread of the engine's process the two share Python's interpreter
lock; here the writing runs in a `python -m` child (not multiprocessing's: a script calling
Paintstep is never run again in it), started before the engine begins so that its imports
overlap the engine's first step. The child runs a ResultWriter: the files are the same, byte
for byte, as one written inline. It is in a session of its own, so Ctrl-C in a terminal reaches
only the command, which ends the child's result as cancelled; if the command dies, the child
ends the result as interrupted when its input closes.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np

from .bands import threads
from .process import StepLayer
from .result import JobState, ResultWriter
from .wire.errors import PaintError


class WriterGone(Exception):
    """The writer process ended before it set the folder up (it could not start Python, or
    import Paintstep): the caller writes on a thread instead."""


class WriterProcess:
    """Writes a result folder as ResultWriter(background=True) does, in a child process.

    start() the process early; open() it on the folder when the first step comes (a request
    the engine refuses leaves nothing behind), then add(), finish() or end() as on a
    ResultWriter. A failed write is raised as a PaintError at the next call, as there.
    """

    def __init__(self, child: subprocess.Popen) -> None:
        self.child = child
        self.answers: list[tuple] = []
        self.answered = threading.Condition()
        self.failure: str | None = None
        self.gone = False
        self.stored: Callable[[int], None] | None = None
        # Messages go out from a thread of their own, so that Ctrl-C (which Python raises in
        # the main thread) never cuts one in half; two waiting at most keep memory flat.
        self.outbox: queue.Queue = queue.Queue(maxsize=2)
        threading.Thread(target=self.write, name="result writer sender", daemon=True).start()
        threading.Thread(target=self.read, name="result writer answers", daemon=True).start()

    @classmethod
    def start(cls) -> WriterProcess | None:
        """A writer process, or None where it would not help (one core) or cannot start."""
        if threads() < 2:
            return None
        options: dict[str, Any] = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        if os.name == "posix":
            options["start_new_session"] = True  # Ctrl-C is the command's to handle
        try:
            child = subprocess.Popen(child_command(), **options)
        except OSError:
            return None
        return cls(child)

    def open(
        self,
        folder: Path,
        start: np.ndarray,
        info: dict[str, Any],
        outputs: Collection[str] = (),
        lean: bool = False,
        stored: Callable[[int], None] | None = None,
    ) -> WriterProcess:
        """Set the folder up with frame 0; raises what ResultWriter would (a PaintError), or
        WriterGone. A `lean` folder (the server's job cache) is written as ResultWriter's
        lean one; `stored(k)` is called (on a thread of this writer's) once step k's layer
        and thumbnail are in the folder and listed."""
        self.stored = stored
        if not self.gone:
            self.outbox.put(("open", str(folder), start, info, tuple(outputs), lean))
        with self.answered:
            self.answered.wait_for(lambda: self.answers or self.gone)
            if not self.answers:
                raise WriterGone(self.failure or GONE)
        self.wait_answer()
        return self

    def add(self, step: StepLayer) -> None:
        self.raise_failure()
        self.send("step", step)

    def finish(self) -> None:
        self.send("finish")
        self.wait_answer()

    def end(self, state: JobState | str, message: str = "") -> None:
        """Record how the process ended, as ResultWriter.end; nothing when the child is gone
        (its folder says "running", as one whose writer died does)."""
        if self.gone:
            return
        self.send("end", str(state), message)
        self.wait_answer()

    def close(self) -> None:
        """End the child once what was sent is done (or now, if it hangs)."""
        if not self.gone:
            self.outbox.put(None)
        try:
            self.child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()

    def send(self, *message: Any) -> None:
        if self.gone:
            raise PaintError(self.failure or GONE)
        self.outbox.put(message)

    def write(self) -> None:
        while True:
            message = self.outbox.get()
            try:
                if message is None:
                    self.child.stdin.close()
                    return
                pickle.dump(message, self.child.stdin, pickle.HIGHEST_PROTOCOL)
                self.child.stdin.flush()
            except Exception:  # a broken pipe (the child died), or a step it cannot take
                self.lost()
                return

    def lost(self) -> None:
        with self.answered:
            self.gone = True
            self.answered.notify_all()
        while True:  # nothing waits on a full outbox any more
            try:
                self.outbox.get_nowait()
            except queue.Empty:
                break
        try:
            self.outbox.put_nowait(None)  # and the sender, if it waits on it, ends
        except queue.Full:
            pass

    def wait_answer(self) -> None:
        with self.answered:
            self.answered.wait_for(lambda: self.answers or self.gone)
            answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            raise PaintError(self.failure or GONE)
        if answer[0] == "error":
            raise PaintError(answer[1])

    def raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None  # said once, as a ResultWriter does
            raise PaintError(failure)

    def read(self) -> None:
        """The child's answers: to open, finish and end in turn, and a failed write whenever
        it happens."""
        while True:
            try:
                answer = pickle.load(self.child.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                self.lost()
                return
            if answer[0] == "failed":
                self.failure = answer[1]
                continue
            if answer[0] == "stored":
                if self.stored is not None:
                    try:
                        self.stored(answer[1])
                    except Exception:  # the caller's trouble must not leave us waiting for ever
                        self.lost()
                        return
                continue
            with self.answered:
                self.answers.append(answer)
                self.answered.notify_all()


def child_command() -> list[str]:
    return [sys.executable, "-m", __name__]


GONE = "The result writer stopped unexpectedly; the result is incomplete. Run again."


def said(error: BaseException) -> str:
    """An error of the child's writer as the sentence the command prints."""
    if isinstance(error, PaintError):
        return str(error)
    return f"The result could not be written ({type(error).__name__}: {error})."


def serve() -> None:
    """The child: a ResultWriter driven by the messages on stdin, answering on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command handles Ctrl-C and tells us
    messages, answers = sys.stdin.buffer, sys.stdout.buffer
    writer: ResultWriter | None = None
    failed = ended = finished = False

    def answer(*reply: Any) -> None:
        pickle.dump(reply, answers, pickle.HIGHEST_PROTOCOL)
        answers.flush()

    def attempt(work, *args: Any, **options: Any) -> tuple[Any, str | None]:
        """What work(*args, **options) returns, and None; or None, and what failed, said."""
        nonlocal failed
        try:
            return work(*args, **options), None
        except Exception as error:
            failed = True
            return None, said(error)

    def reply(error: str | None) -> None:
        answer(*(("ok",) if error is None else ("error", error)))

    while True:
        try:
            kind, *rest = pickle.load(messages)
        except (EOFError, OSError, pickle.UnpicklingError):
            if writer is not None and not ended:  # the command died: say so
                attempt(writer.end, JobState.INTERRUPTED)
            return
        try:
            if kind == "open":
                folder, start, info, outputs, lean = rest
                writer, error = attempt(
                    ResultWriter, Path(folder), start, info, lean, outputs, background=not lean
                )
                reply(error)
            elif kind == "step" and writer is not None:
                if not failed:
                    step = rest[0]
                    _, error = attempt(writer.add, step)
                    if error is not None:
                        answer("failed", error)
                    elif writer.lean:  # written and listed before add returned
                        answer("stored", step.index)
            elif kind == "finish" and writer is not None:
                ended = True  # (a failed finish is ended by the command's "end")
                _, error = attempt(writer.finish)
                finished = error is None
                reply(error)
            elif kind == "end" and writer is not None:
                ended = True
                # Ctrl-C as a finish was answered: the result is whole, and stays finished.
                error = None if finished else attempt(writer.end, *rest)[1]
                reply(error)
            else:
                answer("error", f"The result writer got {kind!r} out of turn.")
        except OSError:  # the command is gone: nobody reads the answers
            return


if __name__ == "__main__":
    serve()

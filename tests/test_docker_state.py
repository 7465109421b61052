"""The docker's job state (krita_plugin/paintstep_krita/job.py) in pytest's own process, with a
fake connection and a fake managed server in place of a server: what it sends, what it keeps
of a job's events, and how it tries a server that does not answer. No widgets, no Krita.
The docker itself, on a fake Krita against a real server, is tests/test_docker_logic.py."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import photo
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, frames
from paintstep.wire.client import Accepted, Done, Progress, Step
from paintstep.wire.protocol import RawImage

PLUGIN = Path(__file__).resolve().parent.parent / "krita_plugin"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("PyQt6") is None, reason="PyQt6 (the dev extra) is not installed"
)


@pytest.fixture
def plugin(monkeypatch):
    """The plugin's modules as Krita 6 loads them (PyQt6), imported afresh: another test may
    have left its Qt shim on fake bindings."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.setitem(sys.modules, "pykrita", types.SimpleNamespace(qt_major_version=lambda: 6))
    for name in [name for name in sys.modules if name.split(".")[0] == "paintstep_krita"]:
        monkeypatch.delitem(sys.modules, name)
    return types.SimpleNamespace(
        job=importlib.import_module("paintstep_krita.job"),
        document=importlib.import_module("paintstep_krita.document"),
        qt=importlib.import_module("paintstep_krita.qt"),
    )


class FakeManaged:
    """A managed server that 'starts' where one is installed."""

    def __init__(self, installed: bool = True) -> None:
        self.installed, self.running, self.started = installed, False, []

    def start(self, address: str) -> str:
        self.started.append(address)
        if not self.installed:
            return "No Paintstep server runs on this machine and none is installed."
        self.running = True
        return "Starting the Paintstep server..."


def fake_connection_class(qt):
    class FakeConnection(qt.QtCore.QObject):
        """Records what the state asks of the server; the test plays the server's side."""

        event = qt.Signal(object)
        status = qt.Signal(str, str)
        welcomed = qt.Signal(object)
        jobs = qt.Signal(object)

        def __init__(self, address: str, keys: str, parent=None) -> None:
            super().__init__(parent)
            self.address, self.keys = address, keys
            self.asked: list = []
            self.prepared: dict = {}
            self.closed = False

        def connect_server(self) -> None:
            self.asked.append(("connect",))

        def generate(self, **job) -> None:
            self.asked.append(("generate", job))

        def list_jobs(self) -> None:
            self.asked.append(("list",))

        def fetch(self, job: str) -> None:
            self.asked.append(("fetch", job))

        def cancel(self) -> None:
            self.asked.append(("cancel",))

        def close(self) -> None:
            self.closed = True

    return FakeConnection


class Heard:
    """What the state's signals said, in order."""

    def __init__(self, state) -> None:
        self.said: list[str] = []
        self.server: list[str] = []
        self.steps: list = []
        self.progress: list[float] = []
        self.cleared = 0
        state.said.connect(self.said.append)
        state.server_said.connect(self.server.append)
        state.step_added.connect(self.steps.append)
        state.progressed.connect(self.progress.append)
        state.cleared.connect(self.count_cleared)

    def count_cleared(self) -> None:
        self.cleared += 1


def new_state(plugin, managed=None, key="/art/cup.kra"):
    connections, retries = [], []

    def connect(address, keys, parent):
        connection = fake_connection_class(plugin.qt)(address, keys, parent)
        connections.append(connection)
        return connection

    state = plugin.job.DockerJob(
        new_connection=connect,
        managed=managed or FakeManaged(),
        document_key=lambda: key,
        retry=retries.append,
    )
    state.connect_to("tcp://127.0.0.1:5999", "")
    return state, connections, retries, Heard(state)


def as_events(layers, job: str = "job1") -> list[Step]:
    def raw(pixels):
        return RawImage(np.ascontiguousarray(pixels).tobytes(), pixels.shape[1], pixels.shape[0])

    layers = list(layers)
    return [
        Step(job, s.index, len(layers), s.x, s.y, raw(s.pixels), raw(s.thumbnail)) for s in layers
    ]


def canvas_of(plugin, picture, x=0, y=0, mask=None):
    height, width = picture.shape[:2]
    return plugin.document.Canvas(x, y, width, height, picture.tobytes(), mask)


def test_a_job_is_sent_with_its_document_and_its_events_are_kept_in_order(plugin):
    state, (connection,), _, heard = new_state(plugin)
    picture = photo("astronaut", 24)
    mask = bytes([255]) * (24 * 24)
    state.generate(
        canvas_of(plugin, picture, 5, 7, mask),
        picture.tobytes(),
        complete=False,
        document="/art/cup.kra",
        steps=3,
        seed=4,
        engine="strokes",
        name="cup",
    )
    kind, job = connection.asked[-1]
    assert kind == "generate" and state.running
    assert job["meta"] == {"document": "/art/cup.kra", "x": 5, "y": 7, "target": True}
    assert bytes(job["canvas"].data) == picture.tobytes() and job["canvas"].width == 24
    assert job["target"].format == "rgba8" and job["mask"].format == "gray8"
    assert (job["steps"], job["seed"], job["name"]) == (3, 4, "cup")
    assert heard.said[-1] == "Sent to the server..." and heard.progress == [0.0]

    steps = as_events(get_engine("strokes").paint(PaintRequest(picture, steps=3)))
    connection.event.emit(Accepted("job1", 2, 3, "queued"))
    assert heard.said[-1] == "Job job1: waiting (2 ahead)"
    connection.event.emit(Progress("job1", 0.25, "loading the model"))
    assert heard.progress[-1] == 0.25 and heard.said[-1] == "Job job1: loading the model..."
    for step in steps:
        connection.event.emit(step)
    assert state.steps == steps and heard.steps == steps and heard.said[-1] == "Step 3 of 3"
    connection.event.emit(Done("job1", "finished", 3))
    assert not state.running and state.finished and heard.progress[-1] == 1.0
    assert heard.said[-1] == "3 steps (finished)."
    assert connection.asked[-1] == ("list",)  # the finished job joins the earlier ones


def test_events_are_told_apart_by_their_type_not_their_name(plugin):
    state, (connection,), _, heard = new_state(plugin)
    state.generate(
        canvas_of(plugin, photo("astronaut", 8)), None, complete=False, document="d", steps=1
    )
    impostor = type("Done", (), {"job": "job1", "state": "finished", "steps": 1})()
    connection.event.emit(impostor)
    assert state.running and heard.said[-1] == "Sent to the server..."


def test_a_server_lost_mid_job_stops_it_keeps_its_steps_and_is_not_restarted(plugin):
    managed = FakeManaged()
    state, (connection,), retries, heard = new_state(plugin, managed)
    picture = photo("astronaut", 16)
    state.generate(canvas_of(plugin, picture), None, complete=False, document="d", steps=2)
    (step, _) = as_events(get_engine("strokes").paint(PaintRequest(picture, steps=2)))
    connection.event.emit(step)
    lost = "The Paintstep server at tcp://127.0.0.1:5999 did not answer job job1 within 5 s."
    connection.status.emit("offline", lost)
    assert not state.running and state.steps == [step]
    assert heard.said[-1] == lost and heard.server[-1] == lost
    assert managed.started == [] and retries == []  # a job was running: it is not retried


def test_with_no_server_answering_one_is_started_and_tried_ten_times(plugin):
    managed = FakeManaged()
    state, (connection,), retries, heard = new_state(plugin, managed)
    for _ in range(12):
        connection.status.emit("offline", "No Paintstep server answers.")
    assert managed.started == ["tcp://127.0.0.1:5999"]  # once, for the connected address
    assert retries == [connection.connect_server] * 10
    assert heard.server[0] == "Starting the Paintstep server..."
    connection.status.emit("connected", "Connected to tcp://127.0.0.1:5999")
    assert heard.server[-1].endswith("(started by Paintstep; it stops when Krita quits)")
    assert state.retries == 0


def test_with_none_installed_the_sentence_says_so_and_nothing_is_retried(plugin):
    managed = FakeManaged(installed=False)
    state, (connection,), retries, heard = new_state(plugin, managed)
    connection.status.emit("offline", "No Paintstep server answers.")
    assert heard.server == ["No Paintstep server runs on this machine and none is installed."]
    assert retries == [] and not state.running


def test_connecting_elsewhere_closes_the_old_connection(plugin):
    state, connections, _, _ = new_state(plugin)
    state.connect_to("tcp://192.0.2.1:5571", "/keys")
    old, new = connections
    assert old.closed and not new.closed and new.asked == [("connect",)]
    assert (new.address, new.keys) == ("tcp://192.0.2.1:5571", "/keys")


def test_the_welcome_offers_only_engines_the_server_can_run(plugin):
    state, (connection,), _, _ = new_state(plugin)
    offered = []
    state.engines_changed.connect(offered.append)
    engines = [{"name": "strokes"}, {"name": "diffusion", "unavailable": "torch is missing"}]
    connection.welcomed.emit({"engines": engines})
    assert list(state.engines) == ["strokes"] and offered == [state.engines]
    assert connection.asked[-1] == ("list",)


def test_earlier_jobs_are_this_documents_and_one_is_fetched_again(plugin):
    state, (connection,), _, heard = new_state(plugin, key="/art/cup.kra")
    mine = {"job": "a1", "width": 8, "height": 6, "steps_done": 4, "state": "finished"}
    mine["meta"] = {"document": "/art/cup.kra", "x": 3, "y": 2, "target": True}
    other = dict(mine, job="b2", meta={"document": "/art/other.kra"})
    listed = []
    state.earlier_changed.connect(listed.append)
    connection.jobs.emit([mine, other])
    assert state.earlier == [mine] and listed == [[mine]]
    assert plugin.job.job_box(mine) == (3, 2, 8, 6)
    assert plugin.job.job_label(mine).endswith(": 4 steps (finished)")
    connection.prepared[("old", 1)] = b"stale"
    state.fetch(mine, canvas_of(plugin, photo("astronaut", 8)[:6]))
    assert connection.asked[-1] == ("fetch", "a1")
    assert state.running and state.job == "a1" and state.has_target and heard.cleared == 1
    assert state.steps == [] and connection.prepared == {}


def test_applied_steps_use_the_pixels_the_connection_prepared(plugin):
    state, (connection,), _, _ = new_state(plugin)
    picture = photo("astronaut", 16)
    state.generate(canvas_of(plugin, picture), None, complete=False, document="d", steps=3)
    steps = as_events(get_engine("strokes").paint(PaintRequest(picture, steps=3)))
    connection.prepared[("job1", 2)] = b"bgra of step 2"
    for step in steps:
        connection.event.emit(step)
    pixels = state.step_pixels(2, 3)
    assert [p.index for p in pixels] == [2, 3]
    assert pixels[0].bgra == b"bgra of step 2" and pixels[1].bgra is None
    assert pixels[1].rgba == bytes(steps[2].layer.data)
    state.set_applying(True)
    assert state.applying


def test_applied_steps_carry_their_stage_and_are_cut_where_it_changes(plugin):
    state, (connection,), _, _ = new_state(plugin)
    picture = photo("astronaut", 16)
    state.generate(canvas_of(plugin, picture), None, complete=False, document="d", steps=4)
    steps = as_events(get_engine("strokes").paint(PaintRequest(picture, steps=4)))
    stages = ["lay-in", "shapes", "shapes", None]  # None: as from an older server
    for step, stage in zip(steps, stages):
        connection.event.emit(replace(step, stage=stage))
    pixels = state.step_pixels(1, 4)
    assert [p.stage for p in pixels] == stages
    runs = plugin.document.stage_runs(pixels)
    assert [(stage, [p.index for p in run]) for stage, run in runs] == [
        ("lay-in", [1]),
        ("shapes", [2, 3]),
        (None, [4]),
    ]
    # A stage met again later is a run of its own (the layers keep the process's order), and
    # steps naming none stay together, as before stages were named.
    again = [replace(p, stage=stage) for p, stage in zip(pixels, ["a", "b", "a", ""])]
    assert [stage for stage, _ in plugin.document.stage_runs(again)] == ["a", "b", "a", None]
    plain = [replace(p, stage=None) for p in pixels]
    assert [len(run) for _, run in plugin.document.stage_runs(plain)] == [4]
    assert plugin.document.stage_group_name("lay-in") == "Lay-in"


def test_scrubbing_builds_each_frame_from_the_kept_ones_as_from_frame_0(plugin):
    from paintstep_krita.frames import rgba_bytes

    state, (connection,), _, _ = new_state(plugin)
    picture = photo("astronaut", 48)
    state.generate(canvas_of(plugin, picture), None, complete=False, document="d", steps=8)
    layers = list(get_engine("strokes").paint(PaintRequest(picture, steps=8, seed=3)))
    for step in as_events(layers):
        connection.event.emit(step)
    expected = list(frames(np.full_like(picture, 255), layers))  # opaque: white paper
    for k in (8, 1, 3, 7, 2, 8, 5):
        shown = np.frombuffer(rgba_bytes(state.frames.at(k)), np.uint8).reshape(picture.shape)
        assert np.abs(shown.astype(int) - expected[k - 1]).max() <= 2, f"frame {k}"
        assert len(state.frames.kept) <= 5  # four checkpoints and the frame last shown


def test_only_app_py_imports_krita_and_the_job_state_runs_without_it(plugin):
    """Krita's API stays in app.py and document.py (which works on the objects app.py hands
    out); selftest.py drives Krita's GUI for the tests."""
    import ast

    importing = set()
    for path in (PLUGIN / "paintstep_krita").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name.split(".")[0] == "krita" for name in names):
                importing.add(path.name)
    assert importing == {"app.py", "selftest.py"}
    assert "krita" not in sys.modules or not hasattr(sys.modules["krita"], "Krita")

"""The server's parts on their own, without a socket: the job store in the cache, the queue
of turns, the check of a generate message, and the events from the worker threads."""

from __future__ import annotations

import json
import select
import threading
import time

import numpy as np
import pytest
from conftest import photo
from paintstep.process import PaintError, StepLayer
from paintstep.result import ResultWriter
from paintstep.serve.handlers import MAX_META_BYTES, generate_from
from paintstep.serve.jobs import Job, JobStore, Turns
from paintstep.serve.worker import Events, FetchEvent, JobEvent
from paintstep.wire.protocol import Message, ProtocolError, image_field

DAY = 86400


def job_folder(store: JobStore, job_id: str, end: str | None, created: float, steps: int = 2):
    """A job's lean folder as the server's worker leaves it: ended as `end`, or still running
    (None) as a server that was killed leaves it."""
    start = photo("coffee", 32)
    info = {"engine": "strokes", "steps_planned": steps, "name": job_id, "created": created}
    writer = ResultWriter(store.folder_of(job_id), start, info, lean=True)
    for index in range(1, steps + 1):
        writer.add(StepLayer(index, 0, 0, start[:4, :4].copy(), start[:8, :8].copy()))
    if end == "finished":
        writer.finish()
    elif end is not None:
        writer.end(end)
    return store.folder_of(job_id)


def test_a_job_the_last_server_was_painting_is_loaded_as_interrupted_and_says_so(tmp_path):
    store = JobStore(tmp_path / "jobs", days=30, most_bytes=1 << 30)
    store.folder.mkdir()
    now = time.time()
    running = job_folder(store, "running", None, now)
    job_folder(store, "done", "finished", now - 10)
    job_folder(store, "stopped", "cancelled", now - 20, steps=1)
    store.load()
    states = {job.id: (job.state, job.steps_done, job.ended) for job in store}
    assert states == {
        "running": ("interrupted", 2, True),
        "done": ("finished", 2, True),
        "stopped": ("cancelled", 1, True),
    }
    manifest = json.loads((running / "manifest.json").read_text())
    assert manifest["state"] == "interrupted"
    assert "stopped while painting" in manifest["message"]
    assert [job.id for job in store.newest_first()] == ["running", "done", "stopped"]
    # Read again (by the next server), it is still interrupted, and still lists its steps.
    again = JobStore(store.folder, days=30, most_bytes=1 << 30)
    again.load()
    assert again.get("running").state == "interrupted" and again.get("running").stored == 2


def test_a_damaged_folder_is_skipped_and_an_unknown_job_is_refused_in_a_sentence(tmp_path):
    store = JobStore(tmp_path / "jobs", days=30, most_bytes=1 << 30)
    store.folder.mkdir()
    job_folder(store, "good", "finished", time.time())
    (store.folder / "damaged").mkdir()
    (store.folder / "damaged" / "manifest.json").write_text("{not json")
    store.load()
    assert [job.id for job in store] == ["good"]
    with pytest.raises(ProtocolError) as refused:
        store.get("nope")
    assert refused.value.code == "unknown_job" and "list the jobs" in refused.value.message


def test_prune_removes_old_ended_jobs_then_the_oldest_while_too_big_but_never_the_newest(
    tmp_path,
):
    store = JobStore(tmp_path / "jobs", days=1, most_bytes=1 << 30)
    store.folder.mkdir()
    now = time.time()
    job_folder(store, "old", "finished", now - 2 * DAY)
    job_folder(store, "older", "failed", now - 3 * DAY)
    job_folder(store, "new", "finished", now - 10)
    store.load()
    store.add(Job("waiting", store.folder_of("waiting"), created=now - 5 * DAY))  # not ended
    store.prune()
    assert sorted(job.id for job in store) == ["new", "waiting"]
    assert not (store.folder / "old").exists() and not (store.folder / "older").exists()

    job_folder(store, "newest", "finished", now)
    store.load_job(store.folder / "newest")
    store.most_bytes = 1  # everything is too big: the newest ended job stays all the same
    store.prune()
    assert sorted(job.id for job in store) == ["newest", "waiting"]
    assert (store.folder / "newest").exists()


def test_turns_serve_the_clients_in_turn():
    turns = Turns()
    greedy, other = (b"greedy",), (b"other",)
    jobs = {name: Job(name, None) for name in ("g1", "g2", "g3", "o1")}
    for name in ("g1", "g2", "g3"):
        turns.put(greedy, jobs[name])
    turns.put(other, jobs["o1"])
    assert turns.get().id == "g1"
    assert turns.get().id == "o1"  # the other client had not been served yet
    assert turns.get().id == "g2"
    assert [job.id for job in turns.waiting()] == ["g3"]
    turns.close()
    assert turns.get() is None


def test_turns_hand_a_worker_only_the_jobs_it_takes():
    turns = Turns()
    turns.put((b"a",), Job("large", None, width=4000, height=4000))
    turns.put((b"b",), Job("small", None, width=40, height=40))
    assert turns.get(lambda job: job.width < 100).id == "small"
    assert [job.id for job in turns.waiting()] == ["large"]


def generate(content: dict, buffers: list, max_side: int = 1024):
    return generate_from(Message("generate", content, buffers), max_side)


def test_a_generate_message_becomes_the_request_the_engine_paints():
    canvas, target = photo("coffee", 48), photo("chelsea", 48)[:32, :48]
    canvas = canvas[:32, :48].copy()
    mask = np.zeros(canvas.shape[:2], np.uint8)
    mask[:, 24:] = 255
    buffers: list = []
    content = {
        "canvas": image_field(canvas, buffers),
        "target": image_field(np.ascontiguousarray(target), buffers),
        "mask": image_field(mask, buffers),
        "steps": 5,
        "seed": 7,
        "options": {"detail": 2},
        "name": "sketch.kra",
        "meta": {"layer": "Paint 1"},
    }
    asked = generate(content, buffers)
    request = asked.request
    assert np.array_equal(request.canvas, canvas) and np.array_equal(request.target, target)
    assert (
        request.mask.dtype == bool and request.mask[:, 24:].all() and not request.mask[:, :24].any()
    )
    assert (request.steps, request.seed, request.options) == (5, 7, {"detail": 2})
    assert (asked.engine, asked.name, asked.meta) == ("strokes", "sketch.kra", {"layer": "Paint 1"})


def test_a_generate_message_without_optional_fields_gets_the_defaults():
    buffers: list = []
    asked = generate({"canvas": image_field(photo("coffee", 16), buffers)}, buffers)
    assert (asked.request.steps, asked.request.seed, asked.engine) == (16, 0, "strokes")
    assert (asked.name, asked.meta, asked.request.target) == ("", {}, None)


@pytest.mark.parametrize(
    "change, error, words",
    [
        ({"canvas": None}, ProtocolError, "needs a canvas"),
        ({"seed": 1.5}, PaintError, "whole number"),
        ({"seed": True}, PaintError, "whole number"),
        ({"steps": 0}, PaintError, "steps"),
        ({"options": {"nonsense": 1}}, PaintError, "no option nonsense"),
        ({"options": [1]}, ProtocolError, "options must be a map"),
        ({"engine": 3}, ProtocolError, "engine must be a name"),
        ({"prompt": 3}, ProtocolError, "prompt must be a string"),
        ({"meta": {"x": "y" * MAX_META_BYTES}}, ProtocolError, "under 4 KB"),
        ({"meta": "notes"}, ProtocolError, "must be a map"),
    ],
)
def test_a_generate_message_that_cannot_be_painted_is_refused_in_a_sentence(change, error, words):
    buffers: list = []
    content = {"canvas": image_field(photo("coffee", 16), buffers), "steps": 3, **change}
    content = {key: value for key, value in content.items() if value is not None}
    with pytest.raises(error) as refused:
        generate(content, buffers)
    assert words in str(refused.value)


def test_a_canvas_larger_than_the_servers_side_is_refused_before_its_pixels_are_read():
    content = {"canvas": {"buffer": 0, "width": 2000, "height": 10, "format": "rgba8"}}
    with pytest.raises(ProtocolError) as refused:
        generate(content, [], max_side=1024)  # no buffer was sent at all
    assert refused.value.code == "too_large" and "1024 px" in refused.value.message


def test_events_from_many_threads_come_in_the_order_each_sent_them_and_wake_the_poller():
    events = Events()
    try:
        assert not select.select([events], [], [], 0)[0]

        def send(name: str) -> None:
            for index in range(200):
                events.put(JobEvent(name, steps_done=index))

        threads = [threading.Thread(target=send, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events.put(FetchEvent("a", (b"client",)))
        assert select.select([events], [], [], 1)[0]
        taken = list(events.take())
        for name in ("a", "b"):
            assert [e.steps_done for e in taken if e.job == name and isinstance(e, JobEvent)] == (
                list(range(200))
            )
        assert isinstance(taken[-1], FetchEvent)
        assert not select.select([events], [], [], 0)[0]  # all taken: quiet again
        assert list(events.take()) == []
    finally:
        events.close()


def test_job_states_are_the_same_strings_in_manifests_and_messages_as_before():
    import msgpack
    from paintstep.result import JobState, Result
    from paintstep.wire.protocol import decode, encode

    written = ["queued", "running", "finished", "cancelled", "failed", "interrupted"]
    assert [state.value for state in JobState] == written
    for state in JobState:
        assert json.loads(json.dumps({"state": state})) == {"state": state.value}
        assert msgpack.unpackb(msgpack.packb(state)) == state.value == f"{state}" == str(state)
        header = decode(encode(Message("done", {"state": state}, job="j"))).content
        assert type(header["state"]) is str
    assert [s.value for s in JobState if s.ended] == [
        "finished",
        "cancelled",
        "failed",
        "interrupted",
    ]
    # Manifests of older versions, with no state or one unknown here, are still read.
    assert Result(None, {"complete": True}).state == JobState.FINISHED
    assert Result(None, {"state": "paused", "complete": False}).state == JobState.INTERRUPTED


def test_a_worker_paints_a_job_into_its_folder_and_says_each_step_and_how_it_ended(tmp_path):
    from paintstep.cli import main
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest
    from paintstep.result import JobState, load_result
    from paintstep.serve.worker import paint
    from PIL import Image

    picture = photo("coffee", 40)
    request = PaintRequest(picture, steps=3, seed=2, options={"detail": "2"})
    store = JobStore(tmp_path / "jobs", days=30, most_bytes=1 << 30)
    job = Job("j", store.folder_of("j"), name="cup", meta={"layer": 1}, engine="strokes")
    job.options, job.steps, job.request = get_engine("strokes").settings(request), 3, request
    events = Events()
    try:
        paint(job, events)
        taken = list(events.take())
    finally:
        events.close()
    assert [e.state for e in taken if e.state] == [JobState.RUNNING, JobState.FINISHED]
    assert [e.message.content["index"] for e in taken if e.steps_done] == [1, 2, 3]
    assert [e.stored for e in taken if e.stored] == [1, 2, 3]
    assert taken[-1].message.type == "done" and taken[-1].message.content["state"] == "finished"
    result = load_result(job.folder)
    assert result.state == JobState.FINISHED and len(result.steps) == 3
    assert (result.manifest["name"], result.manifest["meta"]) == ("cup", {"layer": 1})

    # The manifest says of the run what `paintstep paint` says of the same request.
    Image.fromarray(picture).save(tmp_path / "p.png")
    out = tmp_path / "out"
    arguments = ["paint", str(tmp_path / "p.png"), "--steps", "3", "--seed", "2", "-o", "detail=2"]
    assert main([*arguments, "--out", str(out), "-q"]) == 0
    here = load_result(out).manifest
    keys = ("engine", "seed", "steps_planned", "options")
    assert {key: here[key] for key in keys} == {key: result.manifest[key] for key in keys}
    assert result.manifest["options"]["detail"] == 2  # read by the engine, with the defaults


def test_paintstep_serve_without_options_gets_the_servers_defaults(monkeypatch, tmp_path):
    from paintstep.cli import build_parser
    from paintstep.serve.settings import ServerSettings, from_options
    from paintstep.wire import paths

    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    settings = from_options(build_parser().parse_args(["serve"]))
    assert settings == ServerSettings("tcp://127.0.0.1:5571", tmp_path)
    asked = ["serve", "--host", "::1", "--port", "6000", "--cache-gb", "0.5", "--workers", "0"]
    settings = from_options(build_parser().parse_args(asked))
    assert settings.address == "tcp://[::1]:6000" and settings.cache_bytes == 512 * 1024**2
    assert settings.workers == 1  # at least one


def test_a_step_placed_with_numpy_integers_is_written_and_sent_all_the_same(tmp_path):
    from paintstep.result import load_result
    from paintstep.wire.protocol import decode, encode

    start = photo("coffee", 32)
    step = StepLayer(np.int64(1), np.int64(3), np.int32(2), start[:4, :4].copy(), start[:8, :8])
    writer = ResultWriter(tmp_path / "out", start, {"engine": "strokes"}, lean=True)
    writer.add(step)
    writer.finish()
    assert load_result(tmp_path / "out").layer(1).x == 3
    job = Job("j", tmp_path, steps=1)
    content = decode(encode(job.step_message(step))).content
    assert (content["index"], content["x"], content["y"]) == (1, 3, 2)

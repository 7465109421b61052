"""What a client can make the server hold (issue 14), on a real server over loopback: waiting
jobs' pictures go to disk, not memory."""

from __future__ import annotations

import logging
import sys
import threading
import time

import numpy as np
import zmq
from conftest import half_finished, photo
from paintstep.engines import get_engine
from paintstep.process import PaintRequest
from paintstep.wire.client import Client, Step
from paintstep.wire.protocol import Message
from test_server import Slow, free_port


def in_thread_server(tmp_path, monkeypatch):
    """A Server on a thread of this process, with the `slow` engine registered (2.5 s a step);
    the server, its thread and its address."""
    from paintstep import engines
    from paintstep.serve import Server, ServerSettings

    module = type(sys)("slow_engine")
    module.Slow = Slow
    monkeypatch.setitem(sys.modules, "slow_engine", module)
    monkeypatch.setitem(engines.ENGINES, "slow", "slow_engine:Slow")
    address = f"tcp://127.0.0.1:{free_port()}"
    server = Server(ServerSettings(address=address, cache=tmp_path / "cache"))
    thread = threading.Thread(target=server.run)
    thread.start()
    return server, thread, address


def test_a_waiting_jobs_pictures_wait_on_disk_and_come_back_intact(tmp_path, monkeypatch):
    server, thread, address = in_thread_server(tmp_path, monkeypatch)
    target = photo("astronaut", 768)  # canvas and target: 4.7 MB, parked
    request = PaintRequest(half_finished(target), target=target, steps=2, seed=3)
    try:
        with Client(address, timeout=5) as busy, Client(address, timeout=5) as client:
            slow = PaintRequest(photo("coffee", 48), steps=3)
            running = busy.generate_request(slow, engine="slow")
            slow_job = next(running).job
            waiting = client.generate_request(request)
            job_id = next(waiting).job
            parked = tmp_path / "cache" / "queued" / job_id
            deadline = time.monotonic() + 20
            while not (parked / "target.npy").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (parked / "canvas.npy").exists() and (parked / "target.npy").exists()
            job = server.store.find(job_id)
            with job.lock:
                assert job.request is None and job.parked == parked  # none of it in memory
            assert job.state.value == "queued"
            with Client(address, timeout=5) as other:  # a fetch of it reads them from disk
                asked = other.send(Message("fetch_job", job=job_id))
                accepted = other.wait_for(lambda m: m.re == asked, "the fetch")
                start = accepted.content["start"]
                assert (start["width"], start["height"]) == (768, target.shape[0])
                assert bytes(accepted.buffers[start["buffer"]]) == request.canvas.tobytes()
                dropped = next(other.generate_request(request)).job  # parked, then deleted
                while not (parked.parent / dropped).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                other.delete(dropped)
            busy.cancel(slow_job)
            steps = [e.to_layer() for e in waiting if isinstance(e, Step)]
        here = list(get_engine("strokes").paint(request))
        assert [s.index for s in steps] == [1, 2]
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, here))
        assert not parked.exists()  # read back and removed once painted
        while (parked.parent / dropped).exists() and time.monotonic() < deadline + 20:
            time.sleep(0.05)
        assert list(parked.parent.iterdir()) == []  # and the deleted one's too
    finally:
        server.stop()
        thread.join()


class Burst(get_engine("strokes").__class__):
    """Steps at once, each a 512 x 512 layer of noise (1 MB): a job made to fill queues."""

    def paint(self, request, cancel=None, report=None):
        from paintstep.process import StepLayer, thumbnail

        rng = np.random.default_rng(request.seed)
        for index in range(1, request.steps + 1):
            layer = rng.integers(0, 256, (512, 512, 4), dtype=np.uint8)
            yield StepLayer(index, 0, 0, layer, thumbnail(layer))


def burst_server(tmp_path, monkeypatch):
    """An in-thread server with the `burst` engine, and one finished 30-step burst job: the
    server, its thread, its address, the job and its steps."""
    module = type(sys)("burst_engine")
    module.Burst = Burst
    monkeypatch.setitem(sys.modules, "burst_engine", module)
    from paintstep import engines

    monkeypatch.setitem(engines.ENGINES, "burst", "burst_engine:Burst")
    server, thread, address = in_thread_server(tmp_path, monkeypatch)
    with Client(address, timeout=10) as client:
        events = list(
            client.generate_request(PaintRequest(photo("coffee", 512), steps=30), engine="burst")
        )
    steps = [e.to_layer() for e in events if isinstance(e, Step)]
    assert len(steps) == 30
    return server, thread, address, events[0].job, steps


def test_a_client_that_fetches_and_never_reads_is_sent_a_few_messages_then_forgotten(
    tmp_path, monkeypatch
):
    """Over TCP (the gateway) a client that stops reading gets at most a few messages queued
    for it, not the whole job (30 MB here); then the server forgets it and says so."""
    import msgpack

    server, thread, address, job, steps = burst_server(tmp_path, monkeypatch)
    reader = zmq.Context.instance().socket(zmq.DEALER)
    reader.setsockopt(zmq.RCVHWM, 1)
    reader.setsockopt(zmq.LINGER, 0)
    try:
        reader.connect(address)
        header = {"v": 1, "type": "hello", "id": "h", "content": {"protocols": [1]}}
        reader.send(msgpack.packb(header))
        assert reader.poll(10000)
        reader.recv_multipart()  # welcome
        reader.send(msgpack.packb({"v": 1, "type": "fetch_job", "id": "f", "job": job}))
        time.sleep(3)  # reading nothing while the server sends
        types = []
        while reader.poll(1000):
            message = msgpack.unpackb(reader.recv_multipart()[0])
            types.append(message.get("content", {}).get("code") or message["type"])
        assert types.count("step") < 20, types  # not all 30: most never left the server
        assert "done" not in types
        reader.send(msgpack.packb({"v": 1, "type": "heartbeat", "id": "b"}))
        told = []
        while reader.poll(5000) and "unknown_client" not in told:
            message = msgpack.unpackb(reader.recv_multipart()[0])
            told.append(message.get("content", {}).get("code") or message["type"])
        assert "unknown_client" in told and "step" not in told, told  # fetch again, it says
    finally:
        reader.close()
        server.stop()
        thread.join()


def test_a_client_that_reads_slowly_gets_every_step_all_the_same(tmp_path, monkeypatch, caplog):
    """Its queue overflows again and again; each time it is forgotten, it fetches the steps
    after its last one, and it ends with all of them, intact, in order."""
    caplog.set_level(logging.INFO, logger="paintstep.serve")
    server, thread, address, job, steps = burst_server(tmp_path, monkeypatch)
    try:
        client = Client(address, timeout=10, local=False)  # through the gateway
        # Its socket takes one message at a time, as a slow link would: ZeroMQ's own queue on
        # the client's side would otherwise read ahead for it, whatever it does.
        client.socket.setsockopt(zmq.RCVHWM, 1)
        client.socket.disconnect(address)
        client.socket.connect(address)
        with client:
            got = []
            for event in client.fetch(job):
                if isinstance(event, Step):
                    got.append(event.to_layer())
                    time.sleep(0.1)
        assert [s.index for s in got] == list(range(1, 31))
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(got, steps))
        assert "does not read what it is sent" in caplog.text  # it overflowed, and recovered
        with Client(address, timeout=10) as client:  # each resume asks only for what it lacks
            client.request(Message("fetch_job", {"after": 26}, job=job), "the fetch")
            rest = []
            while not rest or rest[-1] != "done":
                message = client.wait_for(lambda m: m.job == job, "the steps")
                rest.append(message.content["index"] if message.type == "step" else message.type)
        assert rest == [27, 28, 29, 30, "done"]
    finally:
        server.stop()
        thread.join()

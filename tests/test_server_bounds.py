"""What a client can make the server hold (issue 14), on a real server over loopback: waiting
jobs' pictures go to disk, not memory."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
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

"""Pixels through shared memory between a client and a server on the same machine (Linux's
/dev/shm): a real `paintstep serve` process and the real client."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zmq
from conftest import photo
from paintstep.engines import get_engine
from paintstep.process import PaintRequest
from paintstep.wire import shared
from paintstep.wire.client import Client, Step
from test_server import ServerProcess, header, raw_exchange, run_job

pytestmark = pytest.mark.skipif(not shared.available(), reason="no /dev/shm on this machine")

# 640 px: the canvas (1.6 MB) and most layers are over shared.SMALLEST and go through memory.
SIZE = 640


@pytest.fixture
def server(tmp_path):
    running = ServerProcess(tmp_path).start()
    yield running
    running.stop()


def segments_of(*pids: int) -> list[str]:
    """Segment names in /dev/shm made by these processes."""
    return [
        name
        for name in os.listdir(shared.FOLDER)
        if (match := shared.NAME.fullmatch(name)) and int(match.group(1)) in pids
    ]


def test_a_large_canvas_and_its_layers_go_through_memory_and_arrive_intact(server):
    request = PaintRequest(photo("astronaut", SIZE), steps=4, seed=1)
    with Client(server.address) as client:
        assert client.uses_shared
        events, steps = run_job(client, request)
        through_memory = client.shared_bytes
        # Each side took the other's segment names away once it had them mapped.
        assert segments_of(os.getpid(), server.process.pid) == []
    local = list(get_engine("strokes").paint(request))
    assert len(steps) == 4 and events[-1].state == "finished"
    for remote, here in zip(steps, local):
        assert remote.bbox == here.bbox and np.array_equal(remote.pixels, here.pixels)
    big_layers = sum(s.pixels.nbytes for s in local if s.pixels.nbytes >= shared.SMALLEST)
    assert through_memory == request.canvas.nbytes + big_layers > request.canvas.nbytes


def test_a_client_that_never_releases_gets_its_layers_as_frames_all_the_same(server):
    request = PaintRequest(photo("astronaut", SIZE), steps=12, seed=2)
    with Client(server.address) as client:
        send = client.send
        client.send = lambda message: None if message.type == "release" else send(message)
        _, steps = run_job(client, request)
        through_memory = client.shared_bytes
    local = list(get_engine("strokes").paint(request))
    assert len(steps) == 12
    for remote, here in zip(steps, local):
        assert np.array_equal(remote.pixels, here.pixels)
    # The server's room (twice the largest layer) filled up and it went on with frames.
    sent_by_memory = through_memory - request.canvas.nbytes
    assert 0 < sent_by_memory < sum(s.pixels.nbytes for s in local)


def offer(segment: shared.Segment | None, token: bytes, name: str | None = None) -> bytes:
    content = {"client": "test", "protocols": [1]}
    content["shared"] = {"name": name or segment.name, "token": token.hex()}
    return header("hello", content)


def test_memory_is_shared_only_with_a_segment_that_proves_the_same_user(server):
    token = os.urandom(shared.TOKEN_BYTES)
    good = shared.Segment.create(shared.HEADER_BYTES, token)
    readable = shared.Segment.create(shared.HEADER_BYTES, token)
    os.chmod(Path(shared.FOLDER) / readable.name, 0o644)
    try:
        assert raw_exchange(server.local, [offer(good, token)])["content"]["shared"] is True
        # Over TCP the server cannot tell who connects: never shared.
        assert raw_exchange(server.address, [offer(good, token)])["content"]["shared"] is False
        wrong_token = offer(good, os.urandom(shared.TOKEN_BYTES))
        assert raw_exchange(server.local, [wrong_token])["content"]["shared"] is False
        assert raw_exchange(server.local, [offer(readable, token)])["content"]["shared"] is False
        for name in ("../../etc/passwd", "paintstep-1-zz", 7):
            answer = raw_exchange(server.local, [offer(None, token, name)])
            assert answer["type"] == "welcome" and answer["content"]["shared"] is False
    finally:
        good.close()
        readable.close()


def test_the_servers_own_segments_are_never_taken_as_a_clients(server):
    # Offered as a client's, the server's ring would give its layers to whoever asks.
    with Client(server.address) as client:
        send = client.send
        client.send = lambda message: None if message.type == "release" else send(message)
        run_job(client, PaintRequest(photo("astronaut", SIZE), steps=3, seed=1))
        (name,) = client.inboxes  # never released: the server keeps its name
        token = (Path(shared.FOLDER) / name).read_bytes()[: shared.TOKEN_BYTES]
        assert token != bytes(shared.TOKEN_BYTES)  # random, as in every segment
        for guess in (bytes(shared.TOKEN_BYTES), token):
            answer = raw_exchange(server.local, [offer(None, guess, name)])
            assert answer["content"]["shared"] is False


def say_hello_as(user: int | None, address: str) -> None:
    """Connect to `address` from a process of `user` (this one's where None)."""
    pid = os.fork()
    if pid == 0:
        try:
            if user is not None:
                os.setuid(user)
            context = zmq.Context()
            socket = context.socket(zmq.DEALER)
            socket.connect(address)
            socket.send(b"hello")
            socket.close(linger=5000)
            context.term()  # sends it before the process ends
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs another user")
def test_the_os_says_which_user_a_client_on_the_local_socket_runs_as():
    from paintstep.serve.peers import same_user

    folder = Path(tempfile.mkdtemp(prefix="paintstep-peer-"))
    folder.chmod(0o755)
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    address = f"ipc://{folder}/s.sock"
    router.bind(address)
    try:
        (folder / "s.sock").chmod(0o777)
        for user, same in ((65534, False), (None, True)):
            say_hello_as(user, address)
            assert router.poll(10_000)
            frames = router.recv_multipart(copy=False)
            assert same_user(frames[1]) is same
    finally:
        router.close()
        shutil.rmtree(folder)


def test_an_image_in_memory_that_was_never_agreed_is_refused_and_serving_goes_on(server):
    canvas = {"width": SIZE, "height": SIZE, "format": "rgba8"}
    canvas["shared"] = {"name": f"paintstep-{os.getpid()}-{'0' * 16}", "offset": 64}
    answer = raw_exchange(server.address, [header("generate", {"canvas": canvas, "steps": 2})])
    assert answer["type"] == "error" and answer["content"]["code"] == "bad_image"
    assert "frame" in answer["content"]["message"]
    with Client(server.address) as client:
        assert client.welcome["protocol"] == 1


def test_a_restarted_server_gets_frames_from_a_client_that_shared_with_the_old_one(tmp_path):
    first = ServerProcess(tmp_path).start()
    request = PaintRequest(photo("astronaut", SIZE), steps=2, seed=0)
    client = Client(first.address, timeout=10)
    try:
        client.connect()
        assert client.uses_shared
        first.stop()
        second = ServerProcess(tmp_path)
        second.port, second.address = first.port, first.address
        second.start()
        try:
            # The new server never mapped this client's memory: it says so, and the client
            # sends the canvas again as a frame.
            events, steps = run_job(client, request)
            assert len(steps) == 2 and not client.uses_shared
        finally:
            second.stop()
    finally:
        client.close()


def test_segments_left_by_processes_that_died_are_swept_away(server):
    dead = 2**22 + 12345  # above Linux's default pid_max
    assert not shared.process_alive(dead)
    left = Path(shared.FOLDER) / f"paintstep-{dead}-{os.urandom(8).hex()}"
    left.write_bytes(b"\0" * 64)
    mine = shared.Segment.create(shared.HEADER_BYTES)
    try:
        with Client(server.address):
            pass
        assert not left.exists()
        assert (Path(shared.FOLDER) / mine.name).exists()  # a living process's stays
    finally:
        mine.close()
        left.unlink(missing_ok=True)


def test_steps_fetched_again_come_through_memory_too(server):
    request = PaintRequest(photo("astronaut", SIZE), steps=3, seed=4)
    with Client(server.address) as client:
        events, steps = run_job(client, request)
    with Client(server.address) as other:
        again = [e.to_layer() for e in other.fetch(events[0].job) if isinstance(e, Step)]
        assert other.shared_bytes > 0
    assert [s.bbox for s in again] == [s.bbox for s in steps]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again, steps))


def test_with_no_room_in_dev_shm_the_canvas_goes_as_a_frame(server, monkeypatch):
    request = PaintRequest(photo("astronaut", SIZE), steps=2, seed=0)
    with Client(server.address) as client:
        assert client.uses_shared

        def no_room(*args, **kwargs):
            raise shared.SharedError("cannot make room: No space left on device")

        # The canvas needs a larger segment than the one made at hello, and there is no room.
        monkeypatch.setattr(shared.Segment, "create", no_room)
        _, steps = run_job(client, request)
        through_memory = client.shared_bytes
        assert not client.uses_shared
    local = list(get_engine("strokes").paint(request))
    assert len(steps) == 2
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, local))
    # The layers still came through the server's memory (that needs no room here).
    big_layers = sum(s.pixels.nbytes for s in local if s.pixels.nbytes >= shared.SMALLEST)
    assert through_memory == big_layers > 0


def test_with_the_servers_budget_for_shared_memory_spent_layers_go_as_frames(tmp_path, monkeypatch):
    import threading

    from paintstep import serve
    from paintstep.serve import peers
    from test_server import free_port

    monkeypatch.setattr(peers, "MAX_SHARED_BYTES", 0)
    address = f"tcp://127.0.0.1:{free_port()}"
    server = serve.Server(serve.ServerSettings(address=address, cache=tmp_path / "cache"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        request = PaintRequest(photo("astronaut", SIZE), steps=3, seed=1)
        with Client(address) as client:
            assert client.uses_shared
            _, steps = run_job(client, request)
            assert client.shared_bytes == request.canvas.nbytes  # the canvas only
        local = list(get_engine("strokes").paint(request))
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, local))
    finally:
        server.stop()
        thread.join()

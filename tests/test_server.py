"""The server and its client for real: a `paintstep serve` process, real sockets, on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from conftest import NO_NUMPY, half_finished, photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paintstep.engines import get_engine
from paintstep.process import PaintRequest
from paintstep.wire.client import Accepted, Client, Done, Progress, ServerError, ServerLost, Step
from paintstep.wire.keys import load_client_keys, make_keys
from paintstep.wire.protocol import ERROR_CODES, MESSAGE_TYPES, Message, encode, local_address

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.local = local_address(self.address)  # the socket only this user reaches
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> ServerProcess:
        env = dict(os.environ, XDG_STATE_HOME=str(self.tmp / "state"))
        command = [sys.executable, "-m", "paintstep", "serve", "--port", str(self.port)]
        command += ["--cache-dir", str(self.tmp / "cache"), *self.args]
        self.output = open(self.tmp / f"server-{self.port}.log", "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=self.output, stderr=subprocess.STDOUT, text=True
        )
        if wait:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    with Client(self.address, timeout=0.5) as client:
                        assert client.welcome
                        return self
                except ServerLost:
                    assert self.process.poll() is None, self.log()
            raise AssertionError("the server did not start")
        return self

    def log(self) -> str:
        return (self.tmp / f"server-{self.port}.log").read_text()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def server(tmp_path):
    running = ServerProcess(tmp_path).start()
    yield running
    running.stop()


def run_job(client: Client, request: PaintRequest, **kwargs):
    events = list(client.generate_request(request, **kwargs))
    steps = [e.to_layer() for e in events if isinstance(e, Step)]
    return events, steps


def test_welcome_names_the_engines_and_limits(server):
    with Client(server.address) as client:
        welcome = client.welcome
    assert welcome["protocol"] == 1
    engines = {engine["name"]: engine for engine in welcome["engines"]}
    assert {"detail", "opacity"} <= {option["name"] for option in engines["strokes"]["options"]}
    assert not engines["strokes"]["prompt"] and not engines["strokes"]["invents"]
    diffusion = engines["diffusion"]
    assert diffusion["prompt"] and diffusion["invents"]
    mode = next(option for option in diffusion["options"] if option["name"] == "mode")
    assert mode["type"] == "str" and mode["choices"] == ["video", "light"]
    assert welcome["limits"]["max_side"] >= 8192


def test_a_job_streams_its_steps_the_same_as_painting_in_process(server):
    request = PaintRequest(half_finished(photo("coffee", 96)), photo("coffee", 96), steps=6, seed=3)
    with Client(server.address) as client:
        events, steps = run_job(client, request, name="cup")
    assert isinstance(events[0], Accepted) and isinstance(events[-1], Done)
    assert events[-1].state == "finished" and events[-1].steps == 6
    assert any(isinstance(e, Progress) for e in events)
    local = list(get_engine("strokes").paint(request))
    assert [s.index for s in steps] == list(range(1, 7))
    for remote, here in zip(steps, local):
        assert remote.bbox == here.bbox
        assert np.array_equal(remote.pixels, here.pixels)
        assert np.array_equal(remote.thumbnail, here.thumbnail)


def test_several_clients_at_once_each_get_all_of_their_own_steps(server):
    results = {}

    def one(seed: int) -> None:
        with Client(server.address) as client:
            request = PaintRequest(photo("chelsea", 80), steps=5, seed=seed)
            events, steps = run_job(client, request)
            results[seed] = (
                events[0].job,
                {e.job for e in events if not isinstance(e, Step)},
                steps,
            )

    threads = [threading.Thread(target=one, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    for seed, (job, jobs_seen, steps) in results.items():
        assert jobs_seen == {job}
        assert [s.index for s in steps] == [1, 2, 3, 4, 5]
        local = list(
            get_engine("strokes").paint(PaintRequest(photo("chelsea", 80), steps=5, seed=seed))
        )
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, local))


def test_cancel_takes_effect_within_one_step(server):
    with Client(server.address) as client:
        events = client.generate_request(
            PaintRequest(photo("astronaut", 256), steps=60), name="long"
        )
        job, got = None, []
        for event in events:
            if isinstance(event, Accepted):
                job = event.job
            elif isinstance(event, Step):
                got.append(event)
                if len(got) == 2:
                    client.cancel(job)
            elif isinstance(event, Done):
                done = event
        assert done.state == "cancelled"
        assert len(got) <= 4
        listed = {j["job"]: j for j in client.list_jobs()}
        assert listed[job]["state"] == "cancelled"


def test_any_client_lists_fetches_and_deletes_jobs(server):
    request = PaintRequest(photo("coffee", 80), steps=4, seed=1)
    with Client(server.address) as first:
        events, steps = run_job(first, request, name="first", meta={"document": "a.kra", "x": 3})
    job = events[0].job
    with Client(server.address) as other:
        listed = other.list_jobs()
        assert listed[0]["job"] == job and listed[0]["name"] == "first"
        assert listed[0]["meta"] == {"document": "a.kra", "x": 3}
        assert listed[0]["state"] == "finished" and listed[0]["steps_done"] == 4
        fetched = list(other.fetch(job))
        again = [e.to_layer() for e in fetched if isinstance(e, Step)]
        assert np.array_equal(fetched[0].start.array(), request.first_frame())
        assert isinstance(fetched[-1], Done) and fetched[-1].state == "finished"
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again, steps))
        assert all(np.array_equal(a.thumbnail, b.thumbnail) for a, b in zip(again, steps))
        other.delete(job)
        assert job not in [j["job"] for j in other.list_jobs()]
        with pytest.raises(ServerError, match="no job"):
            list(other.fetch(job))
    assert not (server.tmp / "cache" / "jobs" / job).exists()


def test_a_large_job_written_by_a_writer_process_is_fetched_whole(server):
    # Above SMALL_PIXELS the cache folder is written in a process of its own; each step is
    # listed (and fetched) once that process has it on disk, and all of them by `done`.
    request = PaintRequest(photo("coffee", 620), steps=5, seed=2)
    with Client(server.address) as client:
        events, steps = run_job(client, request, name="large")
        job = events[0].job
        fetched = [e.to_layer() for e in client.fetch(job) if isinstance(e, Step)]
        listed = {j["job"]: j for j in client.list_jobs()}[job]
    assert listed["state"] == "finished" and listed["steps_done"] == 5
    assert [s.index for s in fetched] == [1, 2, 3, 4, 5]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(fetched, steps))
    manifest = json.loads((server.tmp / "cache" / "jobs" / job / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["steps"]) == 5
    assert "Traceback" not in server.log()


def test_bad_requests_get_a_sentence_and_the_server_keeps_serving(server):
    with Client(server.address) as client:
        with pytest.raises(ServerError, match="between 1 and 1000"):
            list(client.generate_request(PaintRequest(photo("coffee", 40), steps=5000)))
        with pytest.raises(ServerError, match="nothing left to paint"):
            coffee = photo("coffee", 40)
            list(client.generate_request(PaintRequest(coffee, target=coffee, steps=3)))
        with pytest.raises(ServerError, match="no engine"):
            list(client.generate_request(PaintRequest(photo("coffee", 40), steps=3), engine="oil"))
        _, steps = run_job(client, PaintRequest(photo("coffee", 40), steps=2))
        assert len(steps) == 2


def test_steps_with_empty_layers_reach_the_client_as_they_are(server):
    # A 1 x 1 canvas has nothing left to do in some of its 8 steps: their layers are 0 x 0.
    requests = [
        PaintRequest(photo("coffee", 1), steps=8, seed=1),
        PaintRequest(photo("coffee", 32)[:1], steps=12, seed=2),
    ]
    empty = 0
    with Client(server.address) as client:
        for request in requests:
            events, steps = run_job(client, request)
            local = list(get_engine("strokes").paint(request))
            assert events[-1].state == "finished" and len(steps) == request.steps
            empty += sum(s.pixels.size == 0 for s in steps)
            for remote, here in zip(steps, local):
                assert remote.bbox == here.bbox and np.array_equal(remote.pixels, here.pixels)
    assert empty > 0


def raw_exchange(address: str, frames: list[bytes], wait: float = 3.0) -> dict | None:
    socket_ = zmq.Context.instance().socket(zmq.DEALER)
    socket_.setsockopt(zmq.LINGER, 0)
    socket_.connect(address)
    try:
        socket_.send_multipart(frames)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if socket_.poll(200):
                header = msgpack.unpackb(socket_.recv_multipart()[0])
                if header["type"] != "heartbeat":
                    return header
        return None
    finally:
        socket_.close()


def header(kind: str, content=None, version: int = 1) -> bytes:
    return msgpack.packb({"v": version, "type": kind, "id": "x1", "content": content or {}})


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"\xc1\xc1garbage"], "bad_message"),
        ([msgpack.packb([1, 2, 3])], "bad_message"),
        ([msgpack.packb({"type": "hello"})], "bad_message"),
        ([header("hello", version=99)], "version"),
        ([header("paint_faster")], "unknown_type"),
        ([header("welcome")], "unknown_type"),
        ([header("generate", {})], "bad_message"),
        (
            [
                header(
                    "generate",
                    {"canvas": {"buffer": 0, "width": 10, "height": 10, "format": "rgba8"}},
                ),
                b"short",
            ],
            "bad_image",
        ),
        (
            [
                header(
                    "generate",
                    {"canvas": {"buffer": 0, "width": 90000, "height": 10, "format": "rgba8"}},
                ),
                b"",
            ],
            "too_large",
        ),
        (
            [
                header(
                    "generate",
                    {"canvas": {"buffer": 3, "width": 1, "height": 1, "format": "rgba8"}},
                )
            ],
            "bad_image",
        ),
        ([header("fetch_job")], "unknown_job"),
    ],
)
def test_malformed_messages_get_an_error_with_its_code(server, frames, code):
    reply = raw_exchange(server.address, frames)
    assert reply is not None and reply["type"] == "error"
    assert reply["content"]["code"] == code
    assert (
        reply["content"]["message"].endswith((".", ";", ")"))
        or len(reply["content"]["message"]) > 10
    )
    with Client(server.address) as client:
        assert client.welcome["protocol"] == 1


any_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
image_spec = st.fixed_dictionaries(
    {
        "buffer": st.integers(-2, 4),
        "width": st.integers(-3, 70000),
        "height": st.integers(-3, 50),
        "format": st.sampled_from(["rgba8", "gray8", "rgb", ""]),
    }
)
headers = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 0, 2, "1", None]),
        "type": st.sampled_from([*MESSAGE_TYPES, "", "paint", "x" * 200]),
        "id": st.text(max_size=10) | st.integers(-(2**60), 2**60),
        "content": st.dictionaries(
            st.sampled_from(
                ["canvas", "target", "mask", "steps", "seed", "engine", "options", "name"]
            ),
            image_spec | any_value,
            max_size=6,
        )
        | any_value,
    },
    optional={"job": st.text(max_size=20) | st.integers(0, 2**60), "re": any_value},
)
malformed = st.one_of(
    st.lists(st.binary(max_size=80), min_size=1, max_size=3),
    st.tuples(
        headers.map(lambda h: msgpack.packb(h, use_bin_type=True)), st.binary(max_size=600)
    ).map(list),
    any_value.map(lambda v: [msgpack.packb(v, use_bin_type=True)]),
)


@pytest.mark.slow
@settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=malformed)
def test_thousands_of_malformed_messages_do_not_bring_the_server_down(server, fuzz_socket, frames):
    fuzz_socket.send_multipart(frames)
    while fuzz_socket.poll(0):
        fuzz_socket.recv_multipart()
    assert server.process.poll() is None


@pytest.fixture
def fuzz_socket(server):
    socket_ = zmq.Context.instance().socket(zmq.DEALER)
    socket_.setsockopt(zmq.LINGER, 0)
    socket_.connect(server.address)
    yield socket_
    socket_.close()
    with Client(server.address) as client:
        _, steps = run_job(client, PaintRequest(photo("coffee", 40), steps=2))
        assert len(steps) == 2


CLIENT_THAT_DIES = """
import sys
from paintstep.wire.client import Client, Accepted
from paintstep.process import PaintRequest
sys.path.insert(0, sys.argv[2])
from conftest import photo
client = Client(sys.argv[1]); client.connect()
for event in client.generate_request(PaintRequest(photo("astronaut", 192), steps=12, seed=5)):
    if isinstance(event, Accepted):
        print(event.job, flush=True)
"""


def test_a_client_killed_mid_job_fetches_everything_after_reconnecting(server):
    dying = subprocess.Popen(
        [sys.executable, "-c", CLIENT_THAT_DIES, server.address, str(ROOT / "tests")],
        stdout=subprocess.PIPE,
        text=True,
    )
    job = dying.stdout.readline().strip()
    dying.kill()
    dying.wait()
    with Client(server.address) as client:
        events = list(client.fetch(job))
    steps = [e.to_layer() for e in events if isinstance(e, Step)]
    assert events[-1].state == "finished"
    assert [s.index for s in steps] == list(range(1, 13))
    local = list(
        get_engine("strokes").paint(PaintRequest(photo("astronaut", 192), steps=12, seed=5))
    )
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, local))


def test_a_server_killed_mid_job_still_has_its_steps_after_a_restart(tmp_path):
    first = ServerProcess(tmp_path).start()
    with Client(first.address) as client:
        got, job = [], None
        for event in client.generate_request(
            PaintRequest(photo("astronaut", 320), steps=40, seed=2)
        ):
            if isinstance(event, Accepted):
                job = event.job
            if isinstance(event, Step):
                got.append(event.to_layer())
                if len(got) == 3:
                    first.kill()
                    break
        with pytest.raises(ServerLost, match="did not answer"):
            client.timeout = 1
            list(client.fetch(job))
    second = ServerProcess(tmp_path)
    second.port, second.address = first.port, first.address
    second.start()
    try:
        with Client(second.address) as client:
            listed = {j["job"]: j for j in client.list_jobs()}
            assert listed[job]["state"] == "interrupted"
            # A step goes to its clients a moment before it is on disk: at most one is lost.
            assert listed[job]["steps_done"] >= 2
            events = list(client.fetch(job))
        steps = [e.to_layer() for e in events if isinstance(e, Step)]
        assert events[-1].state == "interrupted"
        assert len(steps) >= 2
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, got))
    finally:
        second.stop()


def test_no_server_is_reported_in_plain_words():
    with pytest.raises(ServerLost, match="start one with `paintstep serve`"):
        Client(f"tcp://127.0.0.1:{free_port()}", timeout=0.5).connect()


def test_listening_beyond_this_machine_without_keys_is_refused(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paintstep",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, XDG_STATE_HOME=str(tmp_path)),
    )
    assert done.returncode == 2
    assert "paintstep keys" in done.stderr


def test_with_keys_only_clients_holding_a_known_key_are_served(tmp_path):
    keys = tmp_path / "keys"
    make_keys(keys, "painter")
    stranger = tmp_path / "stranger"
    make_keys(stranger, "painter")
    served = ServerProcess(tmp_path, "--keys", str(keys))
    served.start(wait=False)
    try:
        good = load_client_keys(keys, "painter")
        deadline = time.monotonic() + 20
        while True:
            try:
                with Client(served.address, timeout=1, keys=good) as client:
                    _, steps = run_job(client, PaintRequest(photo("coffee", 40), steps=2))
                    assert len(steps) == 2
                    break
            except ServerLost:
                assert time.monotonic() < deadline
        bad = load_client_keys(stranger, "painter")
        bad = type(bad)(good.server_public, bad.public, bad.secret)
        with pytest.raises(ServerLost):
            Client(served.address, timeout=1.5, keys=bad).connect()
        with pytest.raises(ServerLost):
            Client(served.address, timeout=1.5, local=False).connect()
        # A key taken out while the server runs admits no one from then on.
        (keys / "clients" / "painter.key").unlink()
        for _ in range(100):
            try:
                with Client(served.address, timeout=1.5, keys=good):
                    time.sleep(0.1)  # the server reads the keys folder again every 0.5 s
            except ServerLost:
                break
        else:
            raise AssertionError("a revoked key is still served")
    finally:
        served.stop()


# The routing ids libzmq 4.3.5's ROUTER would hand out first, were it not seeded.
SQUATTED = [b"\x00" + (0x6B8B4567 + k).to_bytes(4, "big") for k in range(32)]


def test_a_client_that_takes_the_routing_id_handed_out_next_stops_no_one(server):
    context = zmq.Context.instance()
    squatters = []
    try:
        for routing_id in SQUATTED:
            squatter = context.socket(zmq.DEALER)
            squatter.setsockopt(zmq.LINGER, 0)
            squatter.setsockopt(zmq.ROUTING_ID, routing_id)
            squatter.connect(server.address)
            squatter.send(header("hello", {"client": "squatter", "protocols": [1]}))
            squatters.append(squatter)
        assert all(squatter.poll(5000) for squatter in squatters)
        for _ in range(8):  # clients that name no id of their own take the next ones
            with Client(server.address, timeout=5, local=False) as client:
                assert client.welcome["protocol"] == 1
        with Client(server.address) as client:
            _, steps = run_job(client, PaintRequest(photo("coffee", 64), steps=3))
        assert len(steps) == 3 and server.process.poll() is None
    finally:
        for squatter in squatters:
            squatter.close()


def gateway_of(server: ServerProcess) -> int:
    """The pid of the server's TCP gateway process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid and b"paintstep.serve.gateway" in command:
            return int(stat.parent.name)
    raise AssertionError("the server has no gateway process")


def wait_for_log(server: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def within(seconds: float, events, each=lambda event: None) -> list:
    """All of a job's events, failing after `seconds` rather than waiting on a lost stream."""
    got, failed = [], []

    def follow() -> None:
        try:
            for event in events:
                got.append(event)
                each(event)
        except Exception as error:
            failed.append(error)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the job's events stopped after {len(got)}"
    if failed:
        raise failed[0]
    return got


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")
def test_a_tcp_client_picks_up_its_job_when_the_gateway_died_under_it(server):
    request = PaintRequest(photo("astronaut", 256), steps=16, seed=2)

    def abort_the_gateway(event) -> None:
        if isinstance(event, Step) and event.index == 2:
            os.kill(gateway_of(server), signal.SIGABRT)  # as libzmq's assertion does
            wait_for_log(server, "TCP gateway stopped")

    with Client(server.address, local=False) as client:
        assert client.route is None
        events = within(60, client.generate_request(request), abort_the_gateway)
    steps = [e.to_layer() for e in events if isinstance(e, Step)]
    assert [s.index for s in steps] == list(range(1, 17)) and events[-1].state == "finished"
    local = list(get_engine("strokes").paint(request))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(steps, local))
    assert server.process.poll() is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_secret_keys_are_private_and_a_server_with_readable_ones_will_not_start(tmp_path):
    keys = tmp_path / "keys"
    previous = os.umask(0o022)  # as most users have it: files readable by all
    try:
        make_keys(keys, "painter")
    finally:
        os.umask(previous)
    assert keys.stat().st_mode & 0o777 == 0o700
    secrets = sorted(keys.glob("*.key_secret"))
    assert [s.name for s in secrets] == ["painter.key_secret", "server.key_secret"]
    assert all(s.stat().st_mode & 0o777 == 0o600 for s in secrets)
    (keys / "server.key_secret").chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-m", "paintstep", "serve", "--keys", str(keys)]
        + ["--port", str(free_port()), "--cache-dir", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, XDG_STATE_HOME=str(tmp_path)),
    )
    assert done.returncode == 2
    assert "can be read by other users" in done.stderr and "chmod 600" in done.stderr


def test_paint_with_server_writes_the_same_result_as_painting_here(server, tmp_path):
    from paintstep.result import load_result
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(photo("coffee", 72)).save(picture)
    base = [sys.executable, "-m", "paintstep", "paint", str(picture), "--steps", "4", "-q"]
    remote = subprocess.run(
        base + ["--out", str(tmp_path / "r"), "--server", server.address],
        capture_output=True,
        text=True,
    )
    assert remote.returncode == 0, remote.stderr
    subprocess.run(base + ["--out", str(tmp_path / "l")], check=True)
    a, b = load_result(tmp_path / "r"), load_result(tmp_path / "l")
    assert a.complete and len(a.steps) == 4
    for k in range(5):
        assert np.array_equal(a.frame(k), b.frame(k))
    gone = subprocess.run(
        base + ["--out", str(tmp_path / "x"), "--server", f"tcp://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
    )
    assert gone.returncode == 2 and "paintstep serve" in gone.stderr


def test_the_client_and_protocol_run_without_numpy(server):
    """Krita's Python has no numpy: the plugin carries the client and protocol modules."""
    code = NO_NUMPY + (
        "from paintstep.wire.client import Client, Step, Done\n"
        "from paintstep.wire.protocol import RawImage\n"
        "canvas = RawImage(bytes([200, 120, 40, 255]) * (24 * 16), 24, 16)\n"
        f"with Client({server.address!r}) as client:\n"
        "    events = list(client.generate(canvas, steps=3))\n"
        "steps = [e for e in events if isinstance(e, Step)]\n"
        "assert [s.index for s in steps] == [1, 2, 3] and isinstance(events[-1], Done)\n"
        "layer = steps[0].layer\n"
        "assert len(bytes(layer.data)) == layer.width * layer.height * 4\n"
        "assert 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_message_type_is_documented_and_every_documented_one_exists():
    text = (ROOT / "docs" / "protocol.md").read_text()
    documented = set()
    for heading in re.findall(r"^### (.+)$", text, re.M):
        documented |= set(re.findall(r"([a-z_]+) \((?:client|server|both)", heading))
        documented |= set(re.findall(r"^([a-z_]+)$", heading.strip()))
    assert documented == set(MESSAGE_TYPES)
    for kind in MESSAGE_TYPES:
        assert encode(Message(kind))
    codes = text[text.index("### error") :].split("###")[1]
    assert all(f"`{code}`" in codes for code in ERROR_CODES)


@pytest.mark.parametrize(
    "setting, kept_newest", [(["--cache-days", "0"], False), (["--cache-gb", "0.000001"], True)]
)
def test_old_or_too_many_jobs_are_pruned_from_the_cache(tmp_path, setting, kept_newest):
    first = ServerProcess(tmp_path).start()
    with Client(first.address) as client:
        jobs = [run_job(client, PaintRequest(photo("coffee", 40), steps=2))[0][0].job]
        jobs.append(run_job(client, PaintRequest(photo("coffee", 40), steps=2))[0][0].job)
        # A job larger than the whole cache is kept while it is the newest.
        assert {j["job"] for j in client.list_jobs()} >= {jobs[1]}
    first.stop()
    kept = ServerProcess(tmp_path).start()
    with Client(kept.address) as client:
        assert jobs[1] in [j["job"] for j in client.list_jobs()]
    kept.stop()
    pruned = ServerProcess(tmp_path, *setting).start()
    try:
        with Client(pruned.address) as client:
            listed = [j["job"] for j in client.list_jobs()]
        assert listed == (jobs[1:] if kept_newest else [])
        assert not (tmp_path / "cache" / "jobs" / jobs[0]).exists()
    finally:
        pruned.stop()


def test_a_damaged_job_in_the_cache_is_skipped_and_the_server_starts(tmp_path):
    first = ServerProcess(tmp_path).start()
    with Client(first.address) as client:
        job = run_job(client, PaintRequest(photo("coffee", 40), steps=2))[0][0].job
    first.stop()
    manifest = tmp_path / "cache" / "jobs" / job / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"steps": [', '"steps": null, "x": ['))
    second = ServerProcess(tmp_path).start()
    try:
        with Client(second.address) as client:
            assert client.list_jobs() == []
        assert "skipped job folder" in second.log()
    finally:
        second.stop()


def test_weak_fields_are_refused_in_a_sentence(server):
    canvas = {"buffer": 0, "width": 1, "height": 1, "format": "rgba8"}
    for content, word in (({"paper": 123}, "paper"), ({"complete": "yes"}, "complete")):
        reply = raw_exchange(
            server.address, [header("generate", {"canvas": canvas, **content}), b"\0" * 4]
        )
        assert reply["content"]["code"] == "bad_message" and word in reply["content"]["message"]
    for options in ({"detail": True}, {"tolerance": 2.7}):
        content = {"canvas": canvas, "options": options}
        reply = raw_exchange(server.address, [header("generate", content), b"\0" * 4])
        assert reply["content"]["code"] == "bad_request", reply
        assert f"The option {next(iter(options))} must be a" in reply["content"]["message"]
    reply = raw_exchange(server.address, [header("hello", {"client": "x", "protocols": [2]})])
    assert reply["type"] == "error" and reply["content"]["code"] == "version"


def test_a_server_started_for_a_process_stops_when_that_process_dies(tmp_path):
    """The docker starts its server with --parent-pid (Krita's): should Krita crash, the
    server must not stay behind holding the port."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    server = ServerProcess(tmp_path, "--parent-pid", str(parent.pid)).start()
    try:
        with Client(server.address, timeout=2) as client:
            assert client.welcome  # serving while its parent lives
        parent.kill()
        parent.wait()
        assert server.process.wait(15) == 0
        with pytest.raises(ServerLost):
            Client(server.address, timeout=1).connect()
    finally:
        parent.kill()
        server.stop()


class Slow(get_engine("strokes").__class__):
    """The strokes engine taking its time over each step, as a diffusion model does."""

    def paint(self, request, cancel=None, report=None):
        for step in super().paint(request, cancel):
            time.sleep(2.5)
            yield step


def test_a_job_queued_behind_a_long_one_waits_for_its_turn(tmp_path, monkeypatch):
    """A server that is busy for longer than a client's patience for an answer is alive
    (it beats its heart): the waiting client keeps waiting and gets its steps."""
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
    try:
        first = Client(address, timeout=1)
        first.connect()
        long_job = first.generate_request(PaintRequest(photo("coffee", 48), steps=3), engine="slow")
        assert next(long_job).position == 0
        with Client(address, timeout=1) as second:
            events = list(second.generate_request(PaintRequest(photo("chelsea", 48), steps=2)))
        assert events[0].position == 1  # it waited behind the first
        assert [e.index for e in events if isinstance(e, Step)] == [1, 2]
        assert events[-1].state == "finished"
        first.close()
    finally:
        server.stop()
        thread.join()


def test_a_fetch_read_from_the_cache_holds_up_no_other_client(tmp_path, monkeypatch):
    """Reading a large job back takes seconds: the server answers everyone meanwhile."""
    from paintstep.result import load_result
    from paintstep.serve import Server, ServerSettings, worker

    address = f"tcp://127.0.0.1:{free_port()}"
    server = Server(ServerSettings(address=address, cache=tmp_path / "cache"))
    thread = threading.Thread(target=server.run)
    thread.start()
    reading, go_on = threading.Event(), threading.Event()

    def slow_load(folder):
        reading.set()
        assert go_on.wait(30)
        return load_result(folder)

    try:
        request = PaintRequest(photo("coffee", 48), steps=4, seed=1)
        with Client(address, timeout=5) as client:
            events, steps = run_job(client, request)
        monkeypatch.setattr(worker, "load_result", slow_load)
        with Client(address, timeout=5) as fetching, Client(address, timeout=5) as other:
            asked = fetching.send(Message("fetch_job", job=events[0].job))
            assert reading.wait(30)
            assert other.list_jobs()[0]["job"] == events[0].job  # answered while it reads
            go_on.set()
            accepted = fetching.wait_for(lambda m: m.re == asked, "the fetch")
            again = [e.to_layer() for e in fetching.follow(accepted) if isinstance(e, Step)]
        assert [s.index for s in again] == [1, 2, 3, 4]
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again, steps))
    finally:
        go_on.set()
        server.stop()
        thread.join()


def test_clients_are_served_in_turn_and_one_cannot_fill_the_queue(server):
    # 600 px: over the small jobs' lane (512 x 512 px), so every job waits its turn.
    request = PaintRequest(photo("astronaut", 600), steps=6, seed=1)
    with Client(server.address) as greedy, Client(server.address) as other:
        most = greedy.welcome["limits"]["max_queued_per_client"]
        jobs = []
        for _ in range(most + 1):
            jobs.append(greedy.send(Message("generate", *generate_content(request))))
        replies = [greedy.wait_for(lambda m, ident=ident: m.re == ident, "a job") for ident in jobs]
        assert [r.type for r in replies[:-1]] == ["accepted"] * most
        refused = replies[-1].content
        assert refused["code"] == "busy" and "you have" in refused["message"]
        events = list(other.generate_request(request))
        assert events[-1].state == "finished"
        states = {j["job"]: j["state"] for j in other.list_jobs()}
        # The other client's job went next, not after all of the first one's.
        assert sum(states[r.job] in ("queued", "running") for r in replies[:-1]) >= most - 3
        for reply in replies[:-1]:
            greedy.cancel(reply.job)


def generate_content(request: PaintRequest) -> tuple[dict, list]:
    from paintstep.wire.protocol import image_field

    buffers: list = []
    content = {"canvas": image_field(request.canvas, buffers), "steps": request.steps}
    return content, buffers


def test_a_small_job_is_painted_while_a_large_one_runs(server):
    large = PaintRequest(photo("astronaut", 1400), steps=40, seed=1)
    with Client(server.address) as busy, Client(server.address) as other:
        running = busy.generate_request(large)
        job = next(running).job
        assert any(isinstance(event, Step) for event in running)  # under way
        events = list(other.generate_request(PaintRequest(photo("coffee", 64), steps=3)))
        assert events[-1].state == "finished"
        states = {j["job"]: j["state"] for j in other.list_jobs()}
        assert states[job] == "running"
        busy.cancel(job)


def test_each_step_comes_with_its_stage_when_the_engine_names_it(server):
    target = photo("coffee", 64)
    request = PaintRequest(target, steps=8, seed=0, options={"style": "illustration"})
    with Client(server.address) as client:
        _, steps = run_job(client, request, name="stages")
    stages = [step.stage for step in steps]
    assert stages[0] == "sketch" and stages[-1] == "finish" and "flats" in stages

"""The server's targets: canvas round trip, step latency, and many clients at once.

    python bench/server.py [--only roundtrip,latency,load]

- roundtrip: a 4096 x 4096 RGBA canvas from the client to the server (until it answers
  `accepted`) and back as a step (from the engine's yield until the client has it), over
  loopback TCP with pixels as frames and through shared memory, against two numpy copies of
  the same array measured in the same run (target: <= 3x).
- latency: how long after the engine yields a step (1024 px, 16 steps) the client has it, with
  the real server and client in one process (target: <= 20 ms).
- load: a real `paintstep serve` process; 8 clients run 100 jobs in all at once (160 px,
  8 steps each); every step must arrive, and the server's memory after the last job is
  compared with after the first ones (target: flat).
- fairness: a real server painting a large job (--side px, 4096 by default) with another
  client's large jobs queued behind it: how long a small job (256 px) waits for its first step,
  against the same job on the idle server (target: <= 2 s).
- hostile: the same server under the loads of issue 14 at once (a client queueing large jobs
  until `busy`, four clients that fetch a large job and never read (their sockets take one
  message at a time, so the server's side holds what they leave), clients squatting the
  routing ids handed out next): the server's peak memory (it and its gateway) against idle.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import photo  # noqa: E402
from paintstep.process import PaintRequest  # noqa: E402
from paintstep.wire.client import Client, Done, Step  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def roundtrip(repeats: int = 5) -> None:
    """The canvas out (generate until the server has it: `accepted`) and back (the engine
    yields it as a step until the client has that step), through the real server and client,
    with pixels as socket frames and through shared memory. The job's disk writes are not in
    either span: they are not the transport."""
    from paintstep import engines
    from paintstep.process import thumbnail
    from paintstep.serve import Server, ServerSettings

    yielded: list[float] = []

    class Echo(engines.get_engine("strokes").__class__):
        name = "echo"

        def paint(self, request, cancel=None, report=None):
            from paintstep.process import StepLayer

            small = thumbnail(request.canvas)
            yielded.append(time.perf_counter())
            yield StepLayer(1, 0, 0, request.canvas, small)

    sys.modules["bench_echo"] = type(sys)("bench_echo")
    sys.modules["bench_echo"].Echo = Echo
    engines.ENGINES["echo"] = "bench_echo:Echo"
    canvas = np.random.default_rng(0).integers(0, 256, (4096, 4096, 4), dtype=np.uint8)
    spans: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as cache:
        address = f"tcp://127.0.0.1:{free_port()}"
        server = Server(ServerSettings(address=address, cache=Path(cache)))
        thread = threading.Thread(target=server.run)
        thread.start()
        try:
            for way in ("frames", "shared memory"):
                client = Client(address, timeout=30, local=way == "shared memory")
                client.wants_shared = way == "shared memory"
                client.connect()
                assert client.uses_shared == client.wants_shared, "shared memory was refused"
                out, back = spans.setdefault(way, ([], []))
                for _ in range(repeats):
                    began = time.perf_counter()
                    events = client.generate(canvas, steps=1, engine="echo")
                    out.append(time.perf_counter() - began)  # it returns once `accepted`
                    for event in events:
                        if isinstance(event, Step):
                            back.append(time.perf_counter() - yielded[-1])
                            assert np.array_equal(event.layer.array(), canvas)
                client.close()
        finally:
            server.stop()
            thread.join()
    copies = []
    for _ in range(repeats):
        began = time.perf_counter()
        canvas.copy().copy()
        copies.append(time.perf_counter() - began)
    reference = min(copies)
    for way, (out, back) in spans.items():
        trip = min(out) + min(back)
        print(
            f"roundtrip 4096x4096 RGBA, {way}: out {min(out) * 1000:.0f} ms + back "
            f"{min(back) * 1000:.0f} ms = {trip * 1000:.0f} ms; two numpy copies "
            f"{reference * 1000:.0f} ms; ratio {trip / reference:.2f} (target <= 3)"
        )


def latency() -> None:
    from paintstep import engines
    from paintstep.serve import Server, ServerSettings

    yielded: dict[int, float] = {}

    class TimedStrokes(engines.get_engine("strokes").__class__):
        def paint(self, request, cancel=None, report=None):
            for step in super().paint(request, cancel):
                yielded[step.index] = time.perf_counter()
                yield step

    sys.modules["bench_timed"] = type(sys)("bench_timed")
    sys.modules["bench_timed"].TimedStrokes = TimedStrokes
    engines.ENGINES["timed"] = "bench_timed:TimedStrokes"
    with tempfile.TemporaryDirectory() as cache:
        address = f"tcp://127.0.0.1:{free_port()}"
        server = Server(ServerSettings(address=address, cache=Path(cache)))
        thread = threading.Thread(target=server.run)
        thread.start()
        arrived: dict[int, float] = {}
        try:
            with Client(address) as client:
                request = PaintRequest(photo("astronaut", 1024), steps=16, seed=0)
                for event in client.generate_request(request, engine="timed"):
                    if isinstance(event, Step):
                        arrived[event.index] = time.perf_counter()
        finally:
            server.stop()
            thread.join()
    delays = [(arrived[k] - yielded[k]) * 1000 for k in arrived]
    print(
        f"step latency 1024 px, 16 steps: median {np.median(delays):.1f} ms, max "
        f"{max(delays):.1f} ms (target <= 20 ms)"
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(clients: int = 8, jobs: int = 100) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, XDG_STATE_HOME=tmp)
        server = subprocess.Popen(
            [sys.executable, "-m", "paintstep", "serve", "--port", str(port), "--cache-dir", tmp],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    Client(address, timeout=0.3).connect()
                    break
                except Exception:
                    time.sleep(0.1)
            counter = iter(range(jobs))
            lock = threading.Lock()
            complete, lost, memory = [], [], []
            picture = photo("chelsea", 160)

            def run() -> None:
                with Client(address, timeout=30) as client:
                    while True:
                        with lock:
                            seed = next(counter, None)
                        if seed is None:
                            return
                        request = PaintRequest(picture, steps=8, seed=seed)
                        events = list(client.generate_request(request))
                        steps = [e.index for e in events if isinstance(e, Step)]
                        done = events[-1]
                        with lock:
                            if isinstance(done, Done) and steps == list(range(1, 9)):
                                complete.append(seed)
                            else:
                                lost.append(seed)
                            memory.append((len(complete) + len(lost), rss_mb(server.pid)))

            began = time.perf_counter()
            threads = [threading.Thread(target=run) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - began
        finally:
            server.terminate()
            server.wait(10)
    early = [mb for n, mb in memory if 10 <= n <= 30]
    late = [mb for n, mb in memory if n > jobs - 20]
    print(
        f"load: {clients} clients, {jobs} jobs in {seconds:.1f} s: {len(complete)} complete, "
        f"{len(lost)} with missing steps; server memory {np.median(early):.0f} MB after 10-30 "
        f"jobs, {np.median(late):.0f} MB after {jobs - 20}-{jobs} (ratio "
        f"{np.median(late) / np.median(early):.2f}, target flat)"
    )


class Serving:
    """A `paintstep serve` process, and its memory (with its gateway's) sampled as it runs."""

    def __init__(self, tmp: str) -> None:
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        command = [sys.executable, "-m", "paintstep", "serve", "--port", str(port)]
        self.process = subprocess.Popen(
            [*command, "--cache-dir", tmp],
            env=dict(os.environ, XDG_STATE_HOME=tmp),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                with Client(self.address, timeout=0.3):
                    break
            except Exception:
                time.sleep(0.1)
        self.peak = 0.0
        self.sampling = True
        threading.Thread(target=self.sample, daemon=True).start()

    def memory(self) -> float:
        pids = [self.process.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError):
                pass
        return sum(rss_mb(pid) for pid in pids)

    def sample(self) -> None:
        while self.sampling:
            self.peak = max(self.peak, self.memory())
            time.sleep(0.2)

    def stop(self) -> None:
        self.sampling = False
        self.process.terminate()
        self.process.wait(10)


def first_step(address: str, request: PaintRequest) -> float:
    """Seconds from asking for a job until its first step is here."""
    with Client(address, timeout=60) as client:
        began = time.perf_counter()
        for event in client.generate_request(request):
            if isinstance(event, Step):
                waited = time.perf_counter() - began
                client.cancel(event.job)
                return waited
    raise RuntimeError("the small job had no step")


def follow_in_background(address: str, request: PaintRequest) -> tuple[Client, str]:
    """A client painting `request`, reading its events on a thread; (client, job) once running."""
    client = Client(address, timeout=60)
    client.connect()
    events = client.generate_request(request)
    job = next(events).job

    def read() -> None:
        try:
            for _ in events:
                pass
        except Exception:  # the bench closed this client's socket
            pass

    threading.Thread(target=read, daemon=True).start()
    return client, job


def fairness(side: int) -> None:
    small = PaintRequest(photo("coffee", 256), steps=8, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        serving = Serving(tmp)
        try:
            idle = min(first_step(serving.address, small) for _ in range(3))
            large = PaintRequest(photo("astronaut", side), steps=16, seed=2)
            painting, _ = follow_in_background(serving.address, large)
            queued = [follow_in_background(serving.address, large)[0] for _ in range(3)]
            busy = first_step(serving.address, small)
            for client in [painting, *queued]:
                client.socket.close(linger=0)
        finally:
            serving.stop()
    print(
        f"fairness: a 256 px job's first step after {idle:.2f} s on the idle server, {busy:.2f} s "
        f"while a {side} px job runs with three more queued (target <= 2 s); ratio "
        f"{busy / idle:.1f}"
    )


def hostile(side: int) -> None:
    import zmq
    from paintstep.wire.protocol import Message, image_field

    with tempfile.TemporaryDirectory() as tmp:
        serving = Serving(tmp)
        try:
            time.sleep(1)
            idle = serving.memory()
            large = PaintRequest(photo("astronaut", side), steps=12, seed=3)
            painter, job = follow_in_background(serving.address, large)
            # Queue large jobs until busy, over TCP with pixels as frames.
            greedy = Client(serving.address, timeout=60, local=False)
            greedy.connect()
            buffers: list = []
            content = {"canvas": image_field(large.canvas, buffers), "steps": 12}
            accepted, reason = 0, ""
            for _ in range(64):
                asked = greedy.send(Message("generate", content, buffers))
                reply = greedy.wait_for(lambda m, asked=asked: m.re == asked, "the job")
                if reply.type == "error":
                    reason = reply.content["message"]
                    break
                accepted += 1
            # Four clients fetch the large job and never read what comes.
            context = zmq.Context.instance()
            readers = []
            for _ in range(4):
                reader = context.socket(zmq.DEALER)
                reader.setsockopt(zmq.RCVHWM, 1)  # so ZeroMQ does not read ahead for it
                reader.connect(serving.address)
                reader.send(msgpack_header("fetch_job", job))
                readers.append(reader)
            squatters = []
            for k in range(32):
                squatter = context.socket(zmq.DEALER)
                squatter.setsockopt(zmq.ROUTING_ID, b"\x00" + (0x6B8B4567 + k).to_bytes(4, "big"))
                squatter.connect(serving.address)
                squatter.send(msgpack_header("hello", None))
                squatters.append(squatter)
            for _ in range(8):
                with Client(serving.address, timeout=10, local=False):
                    pass
            time.sleep(20)  # the fetches sent, the large jobs waiting
            alive = serving.process.poll() is None
            for sock in readers + squatters:
                sock.close(linger=0)
            greedy.socket.close(linger=0)
            painter.socket.close(linger=0)
        finally:
            serving.stop()
    print(
        f"hostile, {side} px: server and gateway {idle:.0f} MB idle, peak {serving.peak:.0f} MB "
        f"(ratio {serving.peak / idle:.1f}) with {accepted} large jobs queued by one client "
        f"before busy ({reason!r}), four fetches never read and 32 squatters; server alive: "
        f"{alive}"
    )


def msgpack_header(kind: str, job: str | None) -> bytes:
    import msgpack

    header = {"v": 1, "type": kind, "id": "bench", "content": {}}
    if kind == "hello":
        header["content"] = {"client": "squatter", "protocols": [1]}
    if job is not None:
        header["job"] = job
    return msgpack.packb(header)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="roundtrip,latency,load,fairness,hostile")
    parser.add_argument("--side", type=int, default=4096, help="the large jobs' side (px)")
    args = parser.parse_args()
    chosen = args.only.split(",")
    for name in ("roundtrip", "latency", "load"):
        if name in chosen:
            globals()[name]()
    for name in ("fairness", "hostile"):
        if name in chosen:
            globals()[name](args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())

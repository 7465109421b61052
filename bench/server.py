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
from paintstep.client import Client, Done, Step  # noqa: E402
from paintstep.process import PaintRequest  # noqa: E402


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
    from paintstep.serve import Server, Settings

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
        server = Server(Settings(address=address, cache=Path(cache)))
        thread = threading.Thread(target=server.run)
        thread.start()
        try:
            for way in ("frames", "shared memory"):
                client = Client(address, timeout=30)
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
    from paintstep.serve import Server, Settings

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
        server = Server(Settings(address=address, cache=Path(cache)))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="roundtrip,latency,load")
    chosen = parser.parse_args().only.split(",")
    for name in ("roundtrip", "latency", "load"):
        if name in chosen:
            globals()[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())

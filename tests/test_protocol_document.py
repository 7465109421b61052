"""A client written from docs/protocol.md alone (pyzmq, msgpack and numpy, none of Paintstep's
client code) against a real server over TCP: what the document says is enough to paint."""

from __future__ import annotations

import itertools
import time

import msgpack
import numpy as np
import zmq
from conftest import photo
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, composite
from test_server import ServerProcess

ids = itertools.count(1)


class DocumentClient:
    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        self.beat = 0.0

    def send(self, kind: str, content=None, buffers=(), job=None) -> str:
        header = {"v": 1, "type": kind, "id": f"doc-{next(ids)}", "content": content or {}}
        if job is not None:
            header["job"] = job
        self.socket.send_multipart([msgpack.packb(header), *buffers])
        return header["id"]

    def receive(self) -> tuple[dict, list[bytes]]:
        """The next message that is not a heartbeat, heartbeating meanwhile (the doc asks it)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if time.monotonic() - self.beat >= 1:
                self.send("heartbeat")
                self.beat = time.monotonic()
            if self.socket.poll(200):
                header, *buffers = self.socket.recv_multipart()
                header = msgpack.unpackb(header)
                if header["type"] != "heartbeat":
                    return header, buffers
        raise AssertionError("the server went silent")

    def until_done(self, job: str) -> list[tuple[dict, list[bytes]]]:
        messages = []
        while True:
            header, buffers = self.receive()
            assert header.get("job") == job and header["type"] != "error", header
            messages.append((header, buffers))
            if header["type"] == "done":
                return messages


def image(spec: dict, buffers: list[bytes]) -> np.ndarray:
    channels = {"rgba8": 4, "gray8": 1}[spec["format"]]
    data = np.frombuffer(buffers[spec["buffer"]], np.uint8)
    return data.reshape(spec["height"], spec["width"], channels)


def over(frame: np.ndarray, layer: np.ndarray, x: int, y: int) -> None:
    """The document's "over", straight alpha, rounded."""
    below = frame[y : y + layer.shape[0], x : x + layer.shape[1]].astype(np.float64)
    top = layer.astype(np.float64)
    a, b = top[..., 3:] / 255, below[..., 3:] / 255
    alpha = a + b * (1 - a)
    rgb = np.where(
        alpha > 0,
        (top[..., :3] * a + below[..., :3] * b * (1 - a)) / np.maximum(alpha, 1e-12),
        below[..., :3],
    )
    out = np.concatenate([np.rint(rgb), np.rint(alpha * 255)], axis=2).astype(np.uint8)
    painted = layer[..., 3:] > 0
    region = frame[y : y + layer.shape[0], x : x + layer.shape[1]]
    region[...] = np.where(painted, out, region)


def test_a_client_built_from_the_document_alone_paints_and_fetches_a_job(tmp_path):
    server = ServerProcess(tmp_path).start()
    client = DocumentClient(server.address)
    try:
        client.send("hello", {"client": "from-the-doc", "protocols": [1]})
        welcome, _ = client.receive()
        assert welcome["type"] == "welcome" and welcome["content"]["shared"] is False
        limits = welcome["content"]["limits"]
        assert {"max_side", "max_queued", "max_queued_per_client"} <= set(limits)

        goal = photo("chelsea", 64)  # opaque: frame 0 is white paper
        spec = {"buffer": 0, "width": goal.shape[1], "height": goal.shape[0], "format": "rgba8"}
        asked = client.send("generate", {"canvas": spec, "steps": 6, "seed": 2}, [goal.tobytes()])
        accepted, _ = client.receive()
        assert accepted["type"] == "accepted" and accepted["re"] == asked
        job = accepted["job"]
        messages = client.until_done(job)
        assert messages[-1][0]["content"] == {"state": "finished", "steps": 6}

        frame = np.full_like(goal, 255)
        steps = [(h["content"], b) for h, b in messages if h["type"] == "step"]
        assert [content["index"] for content, _ in steps] == list(range(1, 7))
        for content, buffers in steps:
            over(frame, image(content["layer"], buffers), content["x"], content["y"])

        # The same frame as Paintstep's own compositing makes, to rounding.
        expected = PaintRequest(goal, steps=6, seed=2).first_frame()
        for layer in get_engine("strokes").paint(PaintRequest(goal, steps=6, seed=2)):
            composite(expected, layer)
        assert np.abs(frame.astype(int) - expected).max() <= 1

        asked = client.send("fetch_job", job=job)
        fetched, buffers = client.receive()
        assert fetched["type"] == "accepted" and fetched["re"] == asked
        assert np.array_equal(image(fetched["content"]["start"], buffers), np.full_like(goal, 255))
        again = client.until_done(job)
        assert [h["content"]["index"] for h, _ in again if h["type"] == "step"] == list(range(1, 7))
    finally:
        client.socket.close()
        server.stop()

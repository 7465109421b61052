"""Messages of the Paintstep protocol (docs/protocol.md): a msgpack header plus raw buffers.

No Qt, no torch, no numpy: the Krita plugin carries this module with it. Images are RawImage
(bytes and a size) or, where numpy is around, arrays.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5571
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"
HEARTBEAT_SECONDS = 1.0
MISSED_HEARTBEATS = 5  # silence for this many heartbeats means the peer is gone

# Every message type, with who sends it: "client", "server" or "both".
MESSAGE_TYPES = {
    "hello": "client",
    "welcome": "server",
    "generate": "client",
    "accepted": "server",
    "progress": "server",
    "step": "server",
    "done": "server",
    "error": "both",
    "cancel": "client",
    "list_jobs": "client",
    "jobs": "server",
    "fetch_job": "client",
    "delete_job": "client",
    "deleted": "server",
    "heartbeat": "both",
    "release": "client",
}

ERROR_CODES = (
    "version",
    "unknown_type",
    "bad_message",
    "bad_image",
    "too_large",
    "bad_request",
    "unknown_job",
    "busy",
    "engine_failed",
    "server_stopping",
    "unknown_client",
)

IMAGE_FORMATS = {"rgba8": 4, "gray8": 1}
MAX_HEADER_BYTES = 1 << 20


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ address can only be reached from this machine."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def runtime_dir() -> str:
    """The folder, private to this user, that holds the server's local socket."""
    base = os.environ.get("XDG_RUNTIME_DIR") if sys.platform.startswith("linux") else None
    if base and os.path.isdir(base):
        return os.path.join(base, "paintstep")
    return os.path.join(tempfile.gettempdir(), f"paintstep-{os.getuid()}")


def private_dir(path: str) -> bool:
    """Whether `path` is a folder of this user that no other user can enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def local_address(address: str) -> str | None:
    """The ipc:// address at which the server for a tcp:// `address` also listens to clients of
    its own user (None where the address is not tcp or this system has no ipc sockets).

    Only that user can reach it (its folder is 0700), so no other user can connect there.
    """
    parts = urlsplit(address)
    if parts.scheme != "tcp" or sys.platform == "win32":
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        return None
    return f"ipc://{runtime_dir()}/server-{port}.sock"


class ProtocolError(Exception):
    """A message that breaks the protocol; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Message:
    type: str
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[Any] = field(default_factory=list)
    id: str = ""
    re: str | None = None
    job: str | None = None
    version: int = PROTOCOL_VERSION


_counter = itertools.count(1)
_prefix = os.urandom(4).hex()


def new_id() -> str:
    return f"{_prefix}-{next(_counter)}"


def encode(message: Message) -> list[Any]:
    """The frames of a message: the msgpack header, then its buffers as they are (no copy)."""
    if message.type not in MESSAGE_TYPES:
        raise ValueError(f"unknown message type {message.type!r}")
    header: dict[str, Any] = {
        "v": message.version,
        "type": message.type,
        "id": message.id or new_id(),
        "content": message.content,
    }
    if message.re is not None:
        header["re"] = message.re
    if message.job is not None:
        header["job"] = message.job
    return [msgpack.packb(header, use_bin_type=True), *message.buffers]


def decode(frames: list[Any]) -> Message:
    """A message from its frames, checked; raises ProtocolError for anything malformed."""
    if not frames:
        raise ProtocolError("bad_message", "The message is empty.")
    raw = bytes(frames[0].buffer if hasattr(frames[0], "buffer") else frames[0])
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", "The message header is larger than 1 MB.")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_bin_len=0)
    except Exception:
        raise ProtocolError(
            "bad_message",
            "The message header is not msgpack; send a header as docs/protocol.md says.",
        ) from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_message", "The message header must be a map.")
    version = header.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError("bad_message", "The message header has no protocol version (v).")
    kind = header.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "The message header has no type.")
    content = header.get("content", {})
    if not isinstance(content, dict):
        raise ProtocolError("bad_message", "The message content must be a map.")
    ident = header.get("id", "")
    re, job = header.get("re"), header.get("job")
    for name, value in (("id", ident), ("re", re), ("job", job)):
        if value is not None and not isinstance(value, str):
            raise ProtocolError("bad_message", f"The header field {name} must be a string.")
    message = Message(kind, content, list(frames[1:]), ident, re, job, version)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "version",
            f"This server speaks protocol {PROTOCOL_VERSION}, not {version}; update Paintstep "
            "on the side that is older.",
        )
    if kind not in MESSAGE_TYPES:
        raise ProtocolError("unknown_type", f"There is no message type {kind!r} in protocol 1.")
    return message


@dataclass(frozen=True)
class RawImage:
    """Pixels as bytes: width * height pixels, rows top to bottom, in `format` (rgba8, gray8)."""

    data: Any  # bytes, bytearray or memoryview
    width: int
    height: int
    format: str = "rgba8"

    def array(self) -> Any:
        """The pixels as a numpy array over the same memory: (h, w, 4) or (h, w)."""
        import numpy as np

        channels = IMAGE_FORMATS[self.format]
        shape = (self.height, self.width, channels) if channels > 1 else (self.height, self.width)
        return np.frombuffer(self.data, np.uint8).reshape(shape)


def image_field(image: Any, buffers: list[Any]) -> dict[str, Any]:
    """Describe an image for `content` and append its pixels to `buffers` (no copy).

    `image` is a RawImage, or a uint8 numpy array of shape (h, w, 4) or (h, w).
    """
    if not isinstance(image, RawImage):
        image = raw_image(image)
    expected = image.width * image.height * IMAGE_FORMATS[image.format]
    data = memoryview(image.data).cast("B")
    if len(data) != expected:
        raise ValueError(
            f"{len(data)} bytes are not a {image.width} x {image.height} {image.format}"
        )
    buffers.append(data)
    return {
        "buffer": len(buffers) - 1,
        "width": image.width,
        "height": image.height,
        "format": image.format,
    }


def raw_image(pixels: Any) -> RawImage:
    """A RawImage over a contiguous uint8 numpy array (h, w, 4) or (h, w)."""
    import numpy as np

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        fmt = "gray8"
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        fmt = "rgba8"
    else:
        raise ValueError(f"cannot send an image of shape {pixels.shape}")
    # Flat first: a view of an empty image (a 0 x 0 step layer) cannot be cast.
    return RawImage(memoryview(pixels.reshape(-1)), pixels.shape[1], pixels.shape[0], fmt)


def read_raw_image(
    content: dict[str, Any],
    name: str,
    buffers: list[Any],
    max_side: int,
    formats: tuple[str, ...] = ("rgba8",),
    shared: Any = None,
) -> RawImage | None:
    """The image `name` of a message's content, over its buffer (no copy), or None.

    The description is checked against the limits before the buffer is touched. An image in
    shared memory is read by `shared(place, length)` (place: the description's "shared" map),
    which returns the bytes or raises ProtocolError; without it such an image is refused.
    """
    spec = content.get(name)
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ProtocolError("bad_image", f"The {name} must be an image description (a map).")
    width, height, fmt, index = (spec.get(k) for k in ("width", "height", "format", "buffer"))
    if "shared" in spec and index is None:
        index = -1  # the pixels are not in a frame
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height, index)):
        raise ProtocolError("bad_image", f"The {name} needs whole-number width, height, buffer.")
    if fmt not in formats:
        raise ProtocolError(
            "bad_image", f"The {name} must be in format {' or '.join(formats)}, not {fmt!r}."
        )
    if width < 0 or height < 0 or max(width, height) > max_side:
        raise ProtocolError(
            "too_large",
            f"The {name} is {width} x {height} px; this server takes up to {max_side} px a side.",
        )
    expected = width * height * IMAGE_FORMATS[fmt]
    if "shared" in spec:
        if shared is None:
            raise ProtocolError(
                "bad_image",
                f"The {name} lies in shared memory, which was not agreed on this connection; "
                "send its pixels as a frame.",
            )
        place = spec["shared"]
        if not isinstance(place, dict):
            raise ProtocolError("bad_image", f"The {name}'s shared place must be a map.")
        return RawImage(shared(place, expected), width, height, fmt)
    if not 0 <= index < len(buffers):
        raise ProtocolError(
            "bad_image", f"The {name} refers to buffer {index}, which was not sent."
        )
    frame = buffers[index]
    data = memoryview(frame.buffer if hasattr(frame, "buffer") else frame).cast("B")
    if len(data) != expected:
        raise ProtocolError(
            "bad_image",
            f"The {name}'s buffer holds {len(data)} bytes, not the {expected} that "
            f"{width} x {height} {fmt} needs.",
        )
    return RawImage(data, width, height, fmt)


def read_image(
    content: dict[str, Any],
    name: str,
    buffers: list[Any],
    max_side: int,
    formats: tuple[str, ...] = ("rgba8",),
    shared: Any = None,
) -> Any:
    """As read_raw_image, as a numpy array (or None)."""
    raw = read_raw_image(content, name, buffers, max_side, formats, shared)
    return None if raw is None else raw.array()

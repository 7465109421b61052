"""Pixels through shared memory between a client and a server on one machine (docs/protocol.md,
"Shared memory"): one copy into a mapped file and one out, instead of a socket's several.

No Qt, and numpy only where it is around: the Krita plugin carries this module with the
client.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import sys
from collections import OrderedDict

try:  # Krita's Python has no numpy: then pixels are copied into bytes
    import numpy
except ImportError:
    numpy = None

FOLDER = "/dev/shm"
NAME = re.compile(r"paintstep-(\d+)-[0-9a-f]{16}")
TOKEN_BYTES = 16
HEADER_BYTES = 64  # the token, padded: images start on a 64-byte boundary
SMALLEST = 1 << 20  # images under 1 MB travel in the message: a segment would not pay off
ALIGN = 64


class SharedError(ValueError):
    """A segment that cannot be made, mapped or trusted; the pixels go by socket instead."""


def available() -> bool:
    """Whether this machine has a RAM folder for segments (Linux's /dev/shm)."""
    return os.path.isdir(FOLDER) and os.access(FOLDER, os.W_OK | os.X_OK)


def aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


class Segment:
    """A file in /dev/shm mapped into this process."""

    def __init__(self, name: str, mapping: mmap.mmap, made_here: bool) -> None:
        self.name = name
        self.mapping = mapping
        self.size = len(mapping)
        self.made_here = made_here
        self.named = True  # the file still has its name in FOLDER

    @classmethod
    def create(cls, size: int, token: bytes | None = None) -> Segment:
        """A new segment of `size` bytes (at least a header's), `token` (random where none is
        given) at its start: no segment starts with a token anyone could guess."""
        size = max(aligned(size), HEADER_BYTES)
        token = os.urandom(TOKEN_BYTES) if token is None else token
        if len(token) != TOKEN_BYTES:
            raise SharedError(f"a segment's token is {TOKEN_BYTES} bytes, not {len(token)}")
        name = f"paintstep-{os.getpid()}-{os.urandom(8).hex()}"
        path = os.path.join(FOLDER, name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as error:
            raise SharedError(f"cannot make {path}: {error.strerror}") from None
        try:
            # Reserve the memory now: a /dev/shm too small for it (64 MB in a default Docker
            # container) then fails here, where a file only truncated to size would kill the
            # process with SIGBUS on the first write past what is free.
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
            else:
                os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size)
        except OSError as error:
            os.unlink(path)
            raise SharedError(f"cannot make room in {path}: {error.strerror}") from None
        finally:
            os.close(fd)
        mapping[: len(token)] = token
        return cls(name, mapping, made_here=True)

    @classmethod
    def open(cls, name: str, token: bytes | None = None) -> Segment:
        """Map another process's segment, if it can be trusted: named as Paintstep names them,
        a plain file of this process's user that nobody else can read, starting with `token`
        when one is given."""
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise SharedError(f"{name!r} is not the name of a Paintstep segment")
        path = os.path.join(FOLDER, name)
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as error:
            raise SharedError(f"cannot open {path}: {error.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                raise SharedError(f"{path} does not belong to this user")
            if info.st_mode & 0o077:
                raise SharedError(f"{path} can be read by other users")
            if info.st_size < HEADER_BYTES:
                raise SharedError(f"{path} is too small")
            mapping = mmap.mmap(fd, info.st_size)
        except OSError as error:
            raise SharedError(f"cannot map {path}: {error.strerror}") from None
        finally:
            os.close(fd)
        if token is not None and mapping[:TOKEN_BYTES] != token:
            mapping.close()
            raise SharedError(f"{path} does not hold the sender's token")
        return cls(name, mapping, made_here=False)

    def read(self, offset: int, length: int):
        """A copy of `length` bytes at `offset` (bytes, or a uint8 array where numpy is
        around); no view of the mapping stays out."""
        if not (
            isinstance(offset, int)
            and not isinstance(offset, bool)
            and HEADER_BYTES <= offset
            and offset + length <= self.size
        ):
            raise SharedError(
                f"{length} bytes at {offset!r} do not lie in segment {self.name} "
                f"({self.size} bytes)"
            )
        if numpy is None:
            return self.mapping[offset : offset + length]
        # numpy's large allocations take huge pages: five times faster than a fresh bytes.
        return numpy.frombuffer(self.mapping, numpy.uint8, length, offset).copy()

    def write(self, offset: int, data) -> None:
        self.mapping[offset : offset + len(data)] = data

    def unlink(self) -> None:
        """Take the name away; the memory stays while anyone maps it."""
        if self.named:
            self.named = False
            try:
                os.unlink(os.path.join(FOLDER, self.name))
            except OSError:
                pass

    def close(self) -> None:
        if self.made_here:
            self.unlink()
        self.mapping.close()


class Ring:
    """Room for layers in one segment, reused once the client releases them: parts are handed
    out in order round the segment, and a part is free again after its release."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.busy: OrderedDict[int, int] = OrderedDict()  # offset -> size, oldest first
        self.head = HEADER_BYTES

    def allocate(self, size: int) -> int | None:
        """The offset of `size` free bytes, or None when there is no room now."""
        size = aligned(size)
        end = self.segment.size
        if not self.busy:
            self.head = HEADER_BYTES
            offset = self.head if self.head + size <= end else None
        else:
            oldest = next(iter(self.busy))
            if self.head > oldest:  # in use: oldest..head; free: head..end, then start..oldest
                if self.head + size <= end:
                    offset = self.head
                elif HEADER_BYTES + size <= oldest:
                    offset = HEADER_BYTES
                else:
                    offset = None
            else:  # wrapped round: free is head..oldest
                offset = self.head if self.head + size <= oldest else None
        if offset is not None:
            self.busy[offset] = size
            self.head = offset + size
        return offset

    def release(self, offset: int) -> bool:
        return self.busy.pop(offset, None) is not None


def sweep() -> int:
    """Remove segments left by processes that died before the other side mapped them."""
    if not available():
        return 0
    try:
        names = os.listdir(FOLDER)
    except OSError:
        return 0
    removed = 0
    for name in names:
        match = NAME.fullmatch(name)
        try:
            if match is None or process_alive(int(match.group(1))):
                continue
        except OverflowError:  # no process has such a pid: not a name Paintstep made
            continue
        try:
            os.unlink(os.path.join(FOLDER, name))
            removed += 1
        except OSError:  # another user's, or gone already
            pass
    return removed


def process_alive(pid: int) -> bool:
    """Whether the process `pid` still runs (a zombie counts as ended)."""
    if sys.platform == "win32":
        import ctypes

        kernel = ctypes.windll.kernel32
        kernel.OpenProcess.restype = ctypes.c_void_p  # a HANDLE, not an int that may overflow
        handle = kernel.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE
        if not handle:
            return False
        try:
            return kernel.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT: running
        finally:
            kernel.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a parent that died but was not yet reaped
        with open(f"/proc/{pid}/stat") as status:
            return status.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True

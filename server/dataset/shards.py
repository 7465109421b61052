"""The on-disk format: WebDataset-style tar shards (docs/training.md).

A dataset is a folder of `*.tar` files. Each sample is a run of members sharing one key:
`KEY.json` (what the sample is), `KEY.txt` (its caption) and `KEY.000.png`, `KEY.001.png`, ...
(its keyframes, in order, all of one size). A shard is written under a `.partial` name and
renamed when complete, so a reader never sees half of one.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..wire.errors import PaintError

SHARD_SAMPLES = 256  # samples per shard: 16 frames of 512 px make shards of about 1-2 GB
FORMATS = ("png", "jpg", "webp")


@dataclass
class Sample:
    """One painting process: its keyframes (RGB, uint8, one size) and what it is."""

    key: str
    frames: list[np.ndarray]
    caption: str = ""
    meta: dict = field(default_factory=dict)


class ShardWriter:
    """Writes samples into `folder` as PREFIX-00000.tar, PREFIX-00001.tar, ...; shards of an
    earlier run with the same prefix are replaced."""

    def __init__(
        self, folder: Path, prefix: str, image_format: str = "png", per_shard: int = SHARD_SAMPLES
    ) -> None:
        if image_format not in FORMATS:
            raise PaintError(f"Frames are stored as {', '.join(FORMATS)}, not {image_format!r}.")
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob(f"{prefix}-*.tar"), *folder.glob(f"{prefix}-*.tar.partial")]:
            old.unlink()
        self.folder, self.prefix, self.format, self.per_shard = (
            folder,
            prefix,
            image_format,
            per_shard,
        )
        self.tar: tarfile.TarFile | None = None
        self.in_shard = 0
        self.shards: list[Path] = []
        self.samples = 0

    def write(self, sample: Sample) -> None:
        if self.tar is None:
            path = self.folder / f"{self.prefix}-{len(self.shards):05d}.tar.partial"
            self.tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)
        meta = {**sample.meta, "frames": len(sample.frames), "caption": sample.caption}
        add(self.tar, f"{sample.key}.json", json.dumps(meta, indent=1).encode())
        add(self.tar, f"{sample.key}.txt", sample.caption.encode())
        for i, frame in enumerate(sample.frames):
            add(self.tar, f"{sample.key}.{i:03d}.{self.format}", encode(frame, self.format))
        self.samples += 1
        self.in_shard += 1
        if self.in_shard >= self.per_shard:
            self.end_shard()

    def end_shard(self) -> None:
        if self.tar is None:
            return
        partial = Path(self.tar.name)
        self.tar.close()
        done = partial.with_suffix("")  # .tar.partial -> .tar
        partial.replace(done)
        self.shards.append(done)
        self.tar, self.in_shard = None, 0

    def close(self) -> None:
        self.end_shard()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.close()
        elif self.tar is not None:
            self.tar.close()  # left as .partial: an interrupted shard is never read


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same samples make the same bytes
    tar.addfile(info, io.BytesIO(data))


def encode(rgb: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(rgb, "RGB")
    if image_format == "jpg":
        image.save(buffer, "JPEG", quality=95)
    elif image_format == "webp":
        image.save(buffer, "WEBP", lossless=True)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def find_shards(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """The shard files of one or more datasets: folders (their `*.tar`), shard files or glob
    patterns, in a stable order."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    shards: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            shards += sorted(path.glob("*.tar"))
        elif path.is_file():
            shards.append(path)
        else:
            shards += sorted(Path(match) for match in glob.glob(str(path)))
    return shards


def read_shard(path: Path, frames: bool = True) -> Iterator[Sample]:
    """The samples in one shard, in order; without `frames`, their keyframes are not decoded
    (and the list is empty)."""
    try:
        with tarfile.open(path, "r|") as tar:  # a stream: sequential reads only
            current: Sample | None = None
            for member in tar:
                if not member.isfile():
                    continue
                key, _, part = Path(member.name).name.partition(".")
                if current is not None and key != current.key:
                    yield current
                    current = None
                current = current or Sample(key, [])
                data = tar.extractfile(member).read()
                if part == "json":
                    current.meta = json.loads(data)
                elif part == "txt":
                    current.caption = data.decode("utf-8")
                elif frames and part.split(".")[-1] in FORMATS:
                    with Image.open(io.BytesIO(data)) as image:
                        current.frames.append(np.asarray(image.convert("RGB")))
            if current is not None:
                yield current
    except (tarfile.TarError, OSError, ValueError) as error:
        raise PaintError(
            f"The shard {path} could not be read ({error}); write it again or remove it."
        ) from None


def read_samples(
    sources: str | Path | Iterable[str | Path], frames: bool = True
) -> Iterator[Sample]:
    """Every sample of the datasets at `sources` (see find_shards)."""
    for shard in find_shards(sources):
        yield from read_shard(shard, frames)

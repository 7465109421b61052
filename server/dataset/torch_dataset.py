"""The PyTorch Dataset over dataset shards (the only module here that imports torch).

Shards are dealt out to the processes of a distributed run and to the DataLoader's workers, so
that each reads its own files front to back; with fewer shards than readers, every reader reads
them all and keeps every Nth sample instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..wire.errors import PaintError
from .shards import Sample, find_shards, read_shard


class ProcessDataset(IterableDataset):
    """Painting processes from dataset shards, each as a dict: `frames` (F, 3, H, W) float32
    in [-1, 1], `caption`, `key` and `meta`.

    With `frames`, each process gives that many keyframes: a random subset in order that keeps
    the first and the last when it has more (as ProcessPainter trains), its last held when it
    has fewer. `shuffle` is the size of a buffer samples are drawn from at random (0: in order);
    call `set_epoch` each epoch to draw differently. `rank` and `world` default to the
    distributed run's, if one is set up."""

    def __init__(
        self,
        sources: str | Path | Iterable[str | Path],
        frames: int | None = None,
        shuffle: int = 0,
        seed: int = 0,
        rank: int | None = None,
        world: int | None = None,
    ) -> None:
        self.shards = find_shards(sources)
        if not self.shards:
            raise PaintError(f"There are no dataset shards (*.tar) at {sources}.")
        if frames is not None and frames < 2:
            raise PaintError(f"A process needs at least 2 frames, not {frames}.")
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = (
            rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        )
        self.world = (
            world
            if world is not None
            else (torch.distributed.get_world_size() if distributed else 1)
        )
        self.frames, self.shuffle, self.seed, self.epoch = frames, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        readers, reader = self.world * workers, self.rank * workers + worker
        rng = random.Random(f"{self.seed}/{self.epoch}/{reader}")
        shards = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch}").shuffle(shards)  # alike on every reader
        if len(shards) >= readers:
            samples = (s for shard in shards[reader::readers] for s in read_shard(shard))
        else:
            every = (s for shard in shards for s in read_shard(shard))
            samples = (s for i, s in enumerate(every) if i % readers == reader)
        for sample in shuffled(samples, self.shuffle, rng):
            yield self.item(sample, rng)

    def item(self, sample: Sample, rng: random.Random) -> dict:
        chosen = subset(len(sample.frames), self.frames, rng)
        pixels = np.stack([sample.frames[i] for i in chosen])
        frames = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return {"frames": frames, "caption": sample.caption, "key": sample.key, "meta": sample.meta}


def collate(items: list[dict]) -> dict:
    """A batch for a DataLoader (`collate_fn=collate`): the frames stacked (B, N, 3, H, W), the
    captions, keys and metas as lists. PyTorch's default collate would zip the metas, which
    differ from sample to sample (a recording's resizes, a synth's options), and fail."""
    batch = {"frames": torch.stack([item["frames"] for item in items])}
    for name in ("caption", "key", "meta"):
        batch[name] = [item[name] for item in items]
    return batch


def subset(available: int, wanted: int | None, rng: random.Random) -> list[int]:
    """Which of `available` keyframes to give when `wanted` are asked for."""
    if wanted is None or wanted == available:
        return list(range(available))
    if available < wanted:
        return list(range(available)) + [available - 1] * (wanted - available)
    middle = sorted(rng.sample(range(1, available - 1), wanted - 2))
    return [0, *middle, available - 1]


def shuffled(samples: Iterator[Sample], buffer: int, rng: random.Random) -> Iterator[Sample]:
    """`samples` drawn at random from a buffer of `buffer` (in order when 0)."""
    if buffer <= 1:
        yield from samples
        return
    held: list[Sample] = []
    for sample in samples:
        held.append(sample)
        if len(held) >= buffer:
            yield held.pop(rng.randrange(len(held)))
    rng.shuffle(held)
    yield from held

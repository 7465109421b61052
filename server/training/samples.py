"""Validation samples: the engine's own generation with the LoRA as it stands, every K steps.

The first `count` processes of the dataset give the pictures: each is painted from its first
keyframe (as `paint --complete` starts on a canvas) with its caption, by `Video.generate`,
the call a painting job makes, so a sample shows what the engine would paint with the LoRA.
They are written as RUN/samples/step-NNNNNN.gif (the processes side by side, frame by frame)
and step-NNNNNN.png (a contact sheet: a process a row).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from paintstep.animation import write_gif
from paintstep.dataset.shards import read_samples
from paintstep.dataset.show import sheet_of
from PIL import Image

GAP = 4  # px between the processes in a GIF frame


@dataclass(frozen=True)
class Prompt:
    start: np.ndarray  # RGB uint8, the working size
    caption: str


def validation_prompts(sources: list[str], count: int) -> list[Prompt]:
    prompts = []
    for sample in read_samples(sources):
        if len(prompts) >= count:
            break
        prompts.append(Prompt(np.ascontiguousarray(sample.frames[0]), sample.caption))
    return prompts


def write_samples(model, prompts: list[Prompt], settings: dict, folder: Path, step: int) -> Path:
    """Paint each prompt with `model` (a loaded video.Video); the contact sheet's path."""
    processes = []
    for index, prompt in enumerate(prompts):
        height, width = prompt.start.shape[:2]
        frames = model.generate(
            [prompt.start],
            size=(width, height),
            prompt=prompt.caption,
            seed=index,
            settings=settings,
            cancel=threading.Event(),
            report=lambda share: None,
        )
        processes.append([np.rint(f * 255).clip(0, 255).astype(np.uint8) for f in frames])
    folder.mkdir(parents=True, exist_ok=True)
    sheet = folder / f"step-{step:06d}.png"
    Image.fromarray(sheet_of(processes)).save(sheet)
    write_gif(folder / f"step-{step:06d}.gif", [side_by_side(f) for f in zip(*processes)])
    return sheet


def side_by_side(frames: tuple[np.ndarray, ...]) -> Image.Image:
    height = max(f.shape[0] for f in frames)
    width = sum(f.shape[1] for f in frames) + GAP * (len(frames) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for frame in frames:
        canvas[: frame.shape[0], x : x + frame.shape[1]] = frame
        x += frame.shape[1] + GAP
    return Image.fromarray(canvas)

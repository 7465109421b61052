"""The paints-undo engine: Paints-UNDO's released models make the process from a canvas to a
target, or from blank paper to a picture.

Paints-UNDO's single-frame model makes earlier states of a finished picture, one for each
"operation step" (0-999, larger is earlier); its multi-frame model fills in the frames between
two states. Here the finished picture is the target (or, from blank paper, the canvas), and the
frames become steps as the diffusion engine's do: the start's own pixels stay where nothing was
painted, the painted area only grows, and the last step is the target exactly.

So far the engine makes its frames from the single-frame model alone: its earlier states at the
operation steps asked for (Paints-UNDO's demo's keyframes), in the order a painter reaches them.
The multi-frame model (16 frames between each two keyframes) is not yet wired in.

This module stays free of torch; the models are imported when a job runs.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from paintstep.engines import Engine, EngineOption, Report
from paintstep.process import PaintError, PaintRequest, StepLayer

from ..diffusion import (
    DENOISING_SHARE,
    NEEDS,
    brought_back,
    kept_region,
    resized,
    rgb_over_white,
    steps_from_frames,
)
from .weights import UndoWeights, load_undo_weights

# Paints-UNDO's demo (gradio_app.py): its keyframes' operation steps, negative prompt, 50
# sampling steps at guidance 3, 512 x 640 px in blocks of 64.
OPERATION_STEPS = "999,950,900,800,600,400"
NEGATIVE = "lowres, bad anatomy, bad hands, cropped, worst quality"
BLOCK = 64
# A start pixel this light (0-255, over white) is blank paper, which any keyframe may paint.
PAPER = 250


class PaintsUndoEngine(Engine):
    name = "paints-undo"
    description = (
        "Paints-UNDO's released models (lllyasviel) make the process from your canvas to a "
        "target, or from blank paper to your picture; needs its weights on disk and a GPU."
    )
    takes_prompt = True
    options = (
        EngineOption(
            "operation_steps",
            str,
            OPERATION_STEPS,
            "The keyframes' operation steps (0-999, larger is earlier in the process), "
            "separated by commas, in the order they are painted.",
        ),
        EngineOption(
            "size",
            int,
            640,
            "Working resolution: the longer side in px, in blocks of 64.",
            BLOCK,
            1024,
        ),
        EngineOption("sampling_steps", int, 50, "Denoising steps of each keyframe.", 1, 100),
        EngineOption("guidance", float, 3.0, "How closely to follow the prompt.", 1.0, 32.0),
        EngineOption("negative", str, NEGATIVE, "What the pictures should not look like."),
    )

    def __init__(self, weights_config: Path | None = None) -> None:
        self.weights_config = weights_config

    def unavailable(self) -> str | None:
        missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
        if missing:
            return (
                f"The paints-undo engine needs {', '.join(missing)}, which are not installed: "
                "run `python3 install.py --diffusion`, or `pip install 'paintstep[diffusion]'`."
            )
        return None

    def settings(self, request: PaintRequest) -> dict[str, Any]:
        settings = super().settings(request)
        settings["operation_steps"] = operation_steps(settings["operation_steps"])
        settings["size"] = max(BLOCK, settings["size"] // BLOCK * BLOCK)
        return settings

    def paint(
        self,
        request: PaintRequest,
        cancel: threading.Event | None = None,
        report: Report | None = None,
    ) -> Iterator[StepLayer]:
        request.validate()
        settings = self.settings(request)
        weights = load_undo_weights(self.weights_config)
        weights.check(multi_frame=False)
        return paint_process_undo(
            request, settings, weights, cancel or threading.Event(), report or ignore
        )


def ignore(done: float, stage: str) -> None:
    pass


def operation_steps(text: str) -> list[int]:
    """The operation steps an option lists, checked."""
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        steps = []
    if not steps or any(not 0 <= step <= 999 for step in steps):
        raise PaintError(
            "The option operation_steps must list whole numbers from 0 to 999 separated by "
            f"commas, such as {OPERATION_STEPS}, not {text!r}."
        )
    return steps


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The model's (width, height): the canvas's shape with its longer side `side`, in blocks
    of 64 px, as Paints-UNDO's demo sizes its pictures."""
    scale = side / max(width, height)
    return (
        max(BLOCK, round(width * scale / BLOCK) * BLOCK),
        max(BLOCK, round(height * scale / BLOCK) * BLOCK),
    )


def paint_process_undo(
    request: PaintRequest,
    settings: dict[str, Any],
    weights: UndoWeights,
    cancel: threading.Event,
    report: Report,
) -> Iterator[StepLayer]:
    from . import pipeline  # torch and diffusers, only now

    start = request.first_frame()
    goal = request.goal
    assert goal is not None  # the engine does not invent (complete is refused)
    keep = kept_region(request, start)
    height, width = start.shape[:2]
    size = working_size(width, height, settings["size"])
    report(0.0, "loading the model")
    with pipeline.SingleFrame.session(weights) as model:
        report(0.0, "denoising")
        states = model.earlier_states(
            rgb_over_white(goal),
            size=size,
            prompt=request.prompt,
            negative=settings["negative"],
            operation_steps=settings["operation_steps"],
            sampling_steps=settings["sampling_steps"],
            guidance=settings["guidance"],
            seed=request.seed,
            cancel=cancel,
            report=lambda share: report(share * DENOISING_SHARE, "denoising"),
        )
    if states is None:  # cancelled
        return
    report(DENOISING_SHARE, "painting")
    seen_start = resized(rgb_over_white(start).astype(np.float32) / 255, *size)
    seen_goal = resized(rgb_over_white(goal).astype(np.float32) / 255, *size)
    keyframes = [towards(seen_start, state, seen_goal) for state in states]
    generated = np.stack([seen_start, *keyframes, seen_goal])
    wanted = brought_back(start, generated, keep, goal)
    yield from steps_from_frames(start, wanted, len(generated) - 1, request, cancel, report)


def towards(start: np.ndarray, state: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """An earlier state of the goal (h, w, 3 floats 0-1) as a frame after `start`: the state
    where the start is still blank paper or where the state is nearer the goal than the start
    is, the start elsewhere, so that a keyframe never takes back what the artist has already
    painted towards the target."""
    blank = start.min(axis=2) >= PAPER / 255
    nearer = np.abs(state - goal).max(axis=2) < np.abs(start - goal).max(axis=2)
    return np.where((blank | nearer)[..., None], state, start).astype(np.float32)

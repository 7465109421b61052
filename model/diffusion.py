"""The diffusion engine: ProcessPainter-style painting processes from a video diffusion model.

Stable Diffusion 1.5 with AnimateDiff motion modules generates the process as N frames at a
working resolution, with a sparse control net holding frame 0 to the start canvas and, when there
is a goal, the last frame to it. The frames are then brought back to the canvas's size so that
what the artist painted is kept wherever the model did not paint, and each frame becomes a step.
In the light mode an image model (img2img, or inpainting inside the mask) invents the finished
picture and the strokes engine paints the process towards it.

This module stays free of torch: the engine is listed, its options checked and its weights
config read without it (`weights.py`). The model work is in `video.py`, imported when a job
runs.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from paintstep.engines import Engine, EngineOption, Report
from paintstep.process import (
    PaintError,
    PaintRequest,
    StepLayer,
    Thumbnail,
    blend_over,
    composite,
    crop_to_paint,
    solve_over,
)
from PIL import Image

from .strokes import Settings as StrokeSettings
from .strokes import paint_process, paintable_region
from .weights import Weights, load_weights

log = logging.getLogger("paintstep.diffusion")

NEEDS = ("torch", "diffusers", "transformers", "peft")
# How far (0-1) a generated pixel must move from the model's frame 0 to count as painted.
CHANGE_FROM, CHANGE_FULL = 0.04, 0.12
DENOISING_SHARE = 0.9  # of a job's progress, the rest is turning frames into steps
NO_PAINT = StepLayer(0, 0, 0, np.zeros((0, 0, 4), np.uint8))  # a step that paints nothing
MOST_FRAMES = 24  # ProcessPainter's motion modules encode positions up to 24 frames
# What ProcessPainter trains and infers with (configs/training, configs/prompts/*-cn-final).
PROCESSPAINTER = {"frames": 8, "sampling_steps": 50, "guidance": 5.0}


class DiffusionEngine(Engine):
    name = "diffusion"
    description = (
        "Video diffusion (SD1.5 + motion module + sparse control net) invents the rest of the "
        "process; needs a GPU and weights on disk (light mode: an image model and strokes)."
    )
    takes_prompt = True
    invents = True
    options = (
        EngineOption(
            "mode",
            str,
            "video",
            "video: the model paints every frame; light: it invents the finished picture and "
            "strokes paint towards it (fits small GPUs and CPUs).",
            choices=("video", "light"),
        ),
        EngineOption(
            "frames",
            int,
            16,
            "Frames the video model makes (video mode): with ProcessPainter's weights 8, "
            "otherwise at least this, steps + 1 when more, up to 24.",
            8,
            MOST_FRAMES,
        ),
        EngineOption(
            "size",
            int,
            512,
            "Working resolution: the longer side in px, a multiple of 8.",
            32,
            1024,
        ),
        EngineOption(
            "sampling_steps",
            int,
            25,
            "Denoising steps: more is slower, finer (50 with ProcessPainter's weights).",
            1,
            100,
        ),
        EngineOption(
            "guidance",
            float,
            7.5,
            "How closely to follow the prompt (5 with ProcessPainter's weights).",
            0.0,
            20.0,
        ),
        EngineOption(
            "control", float, 1.0, "How strongly the start and goal hold their frames.", 0.0, 2.0
        ),
        EngineOption(
            "strength", float, 0.6, "Light mode: how much of the canvas may change.", 0.05, 1.0
        ),
        EngineOption(
            "inversion",
            str,
            "auto",
            "Start the held frames (the canvas, the target) from a DDIM inversion of their "
            "picture, as ProcessPainter does: auto is on with ProcessPainter's weights.",
            choices=("auto", "on", "off"),
        ),
        EngineOption("lora", str, "", "A painting-style LoRA by name (from the loras folder)."),
        EngineOption("lora_scale", float, 1.0, "How strongly the LoRA applies.", 0.0, 2.0),
        EngineOption(
            "memory",
            str,
            "auto",
            "auto picks by the GPU's free memory; fp32, fp16, sliced (fp16 + VAE slicing), "
            "offload (sliced + model CPU offload) force one.",
            choices=("auto", "fp32", "fp16", "sliced", "offload"),
        ),
    )

    def __init__(self, weights_config: Path | None = None) -> None:
        # The weights list: given by the server (--diffusion-config), else config_path()'s.
        self.weights_config = weights_config

    def settings(self, request: PaintRequest) -> dict[str, Any]:
        settings = super().settings(request)
        settings["size"] = settings["size"] // 8 * 8  # the VAE works in blocks of 8 px
        return settings

    def unavailable(self) -> str | None:
        missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
        if missing:
            return (
                f"The diffusion engine needs {', '.join(missing)}, which are not installed: run "
                "`python3 install.py --diffusion`, or `pip install 'paintstep[diffusion]'`."
            )
        return None

    def paint(
        self,
        request: PaintRequest,
        cancel: threading.Event | None = None,
        report: Report | None = None,
    ) -> Iterator[StepLayer]:
        request.validate()
        settings = self.settings(request)
        weights = load_weights(self.weights_config)
        weights.check(settings["mode"], settings["lora"])
        return paint_process_diffusion(
            request, settings, weights, cancel or threading.Event(), report or ignore
        )


def ignore(done: float, stage: str) -> None:
    pass


# The process ------------------------------------------------------------------------------


def paint_process_diffusion(
    request: PaintRequest,
    settings: dict[str, Any],
    weights: Weights,
    cancel: threading.Event,
    report: Report,
) -> Iterator[StepLayer]:
    from . import video  # torch and diffusers, only now

    start = request.first_frame()
    goal = request.goal
    keep = kept_region(request, start)
    if settings["mode"] == "light":
        yield from light_process(request, settings, weights, start, keep, cancel, report)
        return
    report(0.0, "loading the model")
    conditions = [rgb_over_white(start)] + ([rgb_over_white(goal)] if goal is not None else [])
    with video.Video.session(weights, settings["memory"]) as model:
        settings = recipe(settings, request, model.processpainter)
        if request.steps > settings["frames"] - 1:
            log.info(
                "%d steps from %d frames: strokes paint between frames",
                request.steps,
                settings["frames"],
            )
        report(0.0, "denoising")
        generated = model.generate(
            conditions,
            size=working_size(start.shape[1], start.shape[0], settings["size"]),
            prompt=request.prompt,
            seed=request.seed,
            settings=settings,
            cancel=cancel,
            report=lambda share: report(share * DENOISING_SHARE, "denoising"),
        )
    if generated is None:  # cancelled
        return
    report(DENOISING_SHARE, "painting")
    wanted = brought_back(start, generated, keep, goal)
    yield from steps_from_frames(start, wanted, len(generated) - 1, request, cancel, report)


def recipe(settings: dict[str, Any], request: PaintRequest, processpainter: bool) -> dict[str, Any]:
    """The settings a job runs with. ProcessPainter's weights were trained and are run (its
    scripts/animate.py, configs/prompts) with 8 frames, 50 DDIM steps and guidance 5: options
    not given take those values, and the frames stay 8 however many steps are asked for (the
    strokes engine paints between them). Other weights make steps + 1 frames, up to 24, when
    more steps are asked for than frames (frame 0 is the start)."""
    if processpainter:
        given = request.options
        return {**settings, **{k: v for k, v in PROCESSPAINTER.items() if k not in given}}
    if not settings["lora"]:
        log.warning(
            "The motion module is not ProcessPainter's and no LoRA is applied: plain AnimateDiff "
            "animates motion, not a painting process (docs/diffusion.md says which weights paint)."
        )
    return {**settings, "frames": max(settings["frames"], min(request.steps + 1, MOST_FRAMES))}


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The model's (width, height): the canvas's shape with its longer side `side`, both
    multiples of 8 (the VAE's factor)."""
    side = max(8, side // 8 * 8)
    scale = side / max(width, height)
    return (
        max(8, round(width * scale / 8) * 8),
        max(8, round(height * scale / 8) * 8),
    )


def rgb_over_white(image: np.ndarray) -> np.ndarray:
    """The picture as the model sees it: RGB, transparency laid over white paper."""
    if image[..., 3].min() == 255:
        return np.ascontiguousarray(image[..., :3])
    white = np.full_like(image, 255)
    return blend_over(white, image)[..., :3]


def kept_region(request: PaintRequest, start: np.ndarray) -> np.ndarray:
    """Where frame 0 must stay as it is: outside the mask, and where the canvas already
    matches the goal (the artist's finished parts)."""
    if request.goal is not None and request.starts_on_canvas:
        goal = blend_over(start, request.goal)
        return ~paintable_region(start, goal, request.mask, tolerance=4)
    if request.mask is not None:
        return ~request.mask.astype(bool)
    return np.zeros(start.shape[:2], bool)


def resized(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """A float (h, w) or (h, w, c) array scaled to width x height, smoothly."""
    if values.ndim == 2:
        image = Image.fromarray(values.astype(np.float32), "F")
        return np.array(image.resize((width, height), Image.Resampling.BICUBIC))  # writable
    return np.stack([resized(values[..., c], width, height) for c in range(values.shape[2])], 2)


def brought_back(
    start: np.ndarray,
    generated: np.ndarray,
    keep: np.ndarray,
    goal: np.ndarray | None,
) -> Iterator[np.ndarray]:
    """The generated frames 1.. (F, h, w, 3 floats 0-1) as full-size RGBA frames.

    Where the model's frame moved away from its frame 0, the frame shows what the model
    painted; where it did not, the start's own pixels stay, exactly. The painted area only
    grows (paint covers, it does not uncover), stays out of `keep`, and in between the start
    carries its detail through the model's change. With a goal, the last frame is the goal
    (outside `keep`), and pixels the goal leaves translucent are left to that last step:
    opaque paint before it could not be taken back.
    """
    height, width = start.shape[:2]
    base = rgb_over_white(start)
    first = generated[0]
    painted = np.zeros((height, width), np.float32)
    last = len(generated) - 1
    final = None if goal is None else np.where(keep[..., None], start, blend_over(start, goal))
    hold = keep if final is None else keep | (final[..., 3] < 255)
    for j in range(1, len(generated)):
        if final is not None and j == last:
            yield final
            return
        change = resized(np.abs(generated[j] - first).max(axis=2), width, height)
        weight = np.clip((change - CHANGE_FROM) / (CHANGE_FULL - CHANGE_FROM), 0, 1)
        np.maximum(painted, weight, out=painted)
        painted[hold] = 0
        frame = start.copy()
        spots = painted > 0
        # A channel at a time: at 8192 px each full-size float plane is 256 MB.
        for c in range(3):
            detail = resized(generated[j, ..., c] - first[..., c], width, height)
            detail += base[..., c] * np.float32(1 / 255)
            shown = resized(generated[j, ..., c], width, height)
            shown -= detail
            shown *= painted
            detail += shown
            detail *= 255
            np.rint(detail, out=detail)
            np.clip(detail, 0, 255, out=detail)
            np.copyto(frame[..., c], detail.astype(np.uint8), where=spots)
        frame[..., 3][spots] = 255
        yield frame


def steps_from_frames(
    start: np.ndarray,
    frames: Iterator[np.ndarray],
    count: int,
    request: PaintRequest,
    cancel: threading.Event,
    report: Report,
) -> Iterator[StepLayer]:
    """Steps 1..N leading through the `count` frames, in order. With as many frames as steps
    or more, each step reaches one frame (evenly chosen, the last included); with fewer, the
    strokes engine paints the way from each frame to the next in several steps. The frames
    are made one at a time as they are needed (at 4096 px each is 64 MB)."""
    steps = request.steps
    current = start.copy()
    thumbnail = Thumbnail(current)

    def layers() -> Iterator[StepLayer]:
        """The steps' paint, each made once the step before has been applied to `current`."""
        if steps <= count:
            chosen = set(np.rint(np.linspace(0, count, steps + 1)[1:]).astype(int) - 1)
            for j, wanted in enumerate(frames):
                if j in chosen and not cancel.is_set():
                    yield reach(current, wanted)
            return
        shares = np.diff(np.rint(np.linspace(0, steps, count + 1)).astype(int))
        firsts = np.cumsum(shares) - shares  # the steps done before each frame's turn
        for wanted, share, first in zip(frames, shares, firsts):
            yield from painted_between(current, wanted, int(share), request.seed + int(first))

    for index, layer in enumerate(layers(), 1):
        if cancel.is_set():
            return
        composite(current, layer)
        right, bottom = layer.x + layer.width, layer.y + layer.height
        small = thumbnail.update(current, layer.x, layer.y, right, bottom)
        yield StepLayer(index, layer.x, layer.y, layer.pixels, small)
        report(painting_share(index, steps), "painting")


def painting_share(done: int, steps: int) -> float:
    """How far a job is once `done` of its `steps` steps exist (denoising came first)."""
    return DENOISING_SHARE + (1 - DENOISING_SHARE) * done / steps


def reach(current: np.ndarray, wanted: np.ndarray) -> StepLayer:
    """The paint that turns `current` into `wanted`, as far as paint laid over can (a step
    without its index, not yet applied)."""
    words = current.view(np.uint32)[..., 0]
    wanted_words = wanted.view(np.uint32)[..., 0]
    differ = words != wanted_words
    rows = np.flatnonzero(differ.any(axis=1))
    if rows.size == 0:
        return NO_PAINT
    cols = np.flatnonzero(differ[rows[0] : rows[-1] + 1].any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = (slice(top, bottom), slice(left, right))
    inside = differ[box]
    # An opaque pixel laid over anything gives itself: only translucent ones need solving.
    opaque = wanted_words[box] >= np.uint32(0xFF000000)
    layer_words = np.where(inside & opaque, wanted_words[box], np.uint32(0))
    pixels = layer_words.view(np.uint8).reshape(bottom - top, right - left, 4)
    translucent = inside & ~opaque
    if translucent.any():
        pixels[translucent] = solve_over(current[box][translucent], wanted[box][translucent])
    pixels, x, y = crop_to_paint(pixels, int(left), int(top))
    return StepLayer(0, x, y, np.ascontiguousarray(pixels))


def painted_between(
    current: np.ndarray, wanted: np.ndarray, steps: int, seed: int
) -> Iterator[StepLayer]:
    """`steps` steps of brush strokes from one frame to the next (none needed: empty steps)."""
    if steps <= 0:
        return
    strokes = StrokeSettings(detail=1.0, opacity=0.85, jitter=0.05, tolerance=0, threshold=0.05)
    # Only where the frames differ: elsewhere (the kept region, translucent pixels the next
    # frame leaves as they are) laying the frame over itself would still thicken the paint.
    differ = current.view(np.uint32)[..., 0] != wanted.view(np.uint32)[..., 0]
    request = PaintRequest(current.copy(), target=wanted, mask=differ, steps=steps, seed=seed)
    done = 0
    try:
        for step in paint_process(request, strokes, threading.Event()):
            done += 1
            yield step
    except PaintError:  # the frames are the same: nothing to paint
        pass
    for _ in range(done, steps):
        yield NO_PAINT


# Light mode -------------------------------------------------------------------------------


def light_process(
    request: PaintRequest,
    settings: dict[str, Any],
    weights: Weights,
    start: np.ndarray,
    keep: np.ndarray,
    cancel: threading.Event,
    report: Report,
) -> Iterator[StepLayer]:
    """An image model invents the finished picture (unless there is a goal already), then the
    strokes engine paints the process towards it."""
    goal = request.goal
    if goal is None:
        from . import video

        report(0.0, "loading the model")
        height, width = start.shape[:2]
        mask = None if request.mask is None else request.mask.astype(bool)
        with video.Picture.session(weights, settings["memory"]) as model:
            report(0.0, "denoising")
            invented = model.generate(
                rgb_over_white(start),
                mask,
                size=working_size(width, height, settings["size"]),
                prompt=request.prompt,
                seed=request.seed,
                settings=settings,
                cancel=cancel,
                report=lambda share: report(share * DENOISING_SHARE, "denoising"),
            )
        if invented is None:
            return
        # As in video mode: the model's picture where it changed the canvas, the canvas's own
        # pixels where it did not (and in the kept region).
        seen = resized(rgb_over_white(start).astype(np.float32) / 255, *invented.shape[1::-1])
        (goal,) = brought_back(start, np.stack([seen, invented]), keep, None)
    report(DENOISING_SHARE, "painting")
    strokes = StrokeSettings(detail=1.0, opacity=0.85, jitter=0.05, tolerance=4, threshold=0.05)
    target = PaintRequest(
        start, target=goal, mask=~keep if keep.any() else None, steps=request.steps
    )
    target.seed = request.seed
    try:
        steps = paint_process(target, strokes, cancel)
        first = next(steps, None)
    except PaintError:
        if request.goal is not None:
            raise
        raise PaintError(
            "The image model left the canvas as it was, so there is nothing to paint; raise "
            "the strength option or change the prompt."
        ) from None
    for step in steps if first is None else itertools.chain([first], steps):
        yield step
        report(painting_share(step.index, request.steps), "painting")

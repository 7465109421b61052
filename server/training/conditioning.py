"""Which frames the sparse control net holds in a training step, and its inputs for them.

At inference the engine holds frame 0 to the canvas and, with a target, the last frame to it
(`video.Video.generate`). ProcessPainter trains with a random set of held frames each step
(its train.py, `random_indexes`): 1 to 8 of them, the first and the last each drawn with a
third of the weight, the middle ones sharing the last third in a bell around the centre, so
the model learns to start on a canvas, to end on a target, and to pass through given frames.
"""

from __future__ import annotations

import math

import torch

MOST_HELD = 8  # ProcessPainter: random.randint(1, 8)


def held_weights(frames: int) -> torch.Tensor:
    """Each frame's weight for being held (ProcessPainter's
    generate_normal_shaped_symmetric_corrected for the middle ones)."""
    if frames <= 2:
        return torch.full((frames,), 1.0 / frames)
    middle = frames - 2
    centre, spread = (middle - 1) / 2, middle / 6
    bell = torch.tensor([math.exp(-((i - centre) ** 2) / (2 * spread**2)) for i in range(middle)])
    return torch.cat([torch.tensor([1 / 3]), bell / bell.sum() / 3, torch.tensor([1 / 3])])


def held_frames(frames: int, hold: str, generator: torch.Generator) -> list[int]:
    """The frames held this step, in order. `random`: ProcessPainter's draw; `ends`: what the
    engine holds, frame 0 always and the last one half of the time."""
    if hold == "ends":
        last = torch.rand((), generator=generator).item() < 0.5
        return [0, frames - 1] if last else [0]
    count = int(torch.randint(1, min(MOST_HELD, frames) + 1, (), generator=generator))
    chosen = torch.multinomial(held_weights(frames), count, generator=generator)
    return sorted(int(i) for i in chosen)


def control_inputs(latents: torch.Tensor, held: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The control net's `controlnet_cond` and `conditioning_mask` for latents (B, C, F, h, w):
    the held frames' latents and ones there, zeros elsewhere, as the pipeline's
    prepare_sparse_control_conditioning makes them from the conditioning pictures."""
    cond = torch.zeros_like(latents)
    mask = torch.zeros_like(latents[:, :1])
    cond[:, :, held] = latents[:, :, held]
    mask[:, :, held] = 1
    return cond, mask

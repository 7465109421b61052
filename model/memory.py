"""The diffusion engine's memory plans: which switches a pipeline runs with on which GPU.

A plan is chosen by the GPU's free memory when a model loads (and said in the log); a job that
runs out of GPU memory anyway is retried once with the next, leaner plan (see video.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from paintstep.process import PaintError

from .weights import Weights

GIB = 1024**3


@dataclass(frozen=True)
class Memory:
    """Which memory switches a pipeline runs with."""

    name: str
    dtype: torch.dtype
    sliced: bool  # the VAE decodes one frame at a time, the UNet's feed-forward in chunks
    offload: bool  # each model moves to the GPU only while it runs

    @property
    def says(self) -> str:
        parts = [str(self.dtype).removeprefix("torch.")]
        parts += ["VAE slicing", "chunked feed-forward"] if self.sliced else []
        parts += ["model CPU offload"] if self.offload else []
        return ", ".join(parts) + ", SDPA attention"


MEMORY = {
    "fp32": Memory("fp32", torch.float32, False, False),
    "fp16": Memory("fp16", torch.float16, False, False),
    "sliced": Memory("sliced", torch.float16, True, False),
    "offload": Memory("offload", torch.float16, True, True),
}
# Free GPU memory each plan wants for 16 frames at 512 x 512 (see docs/benchmarks.md).
ENOUGH = {"fp16": 16 * GIB, "sliced": 9 * GIB}
# The plan a job that ran out of GPU memory is retried with.
LEANER = {"fp32": "fp16", "fp16": "sliced", "sliced": "offload"}


def device_of(weights: Weights) -> torch.device:
    if weights.device != "auto":
        if weights.device.startswith("cuda") and not torch.cuda.is_available():
            raise PaintError(
                f"{weights.config} asks for device {weights.device!r}, but torch sees no CUDA "
                'GPU here; set "device": "cpu", or install a CUDA build of torch.'
            )
        return torch.device(weights.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_memory(asked: str, device: torch.device) -> tuple[Memory, str]:
    """The memory plan and why it was chosen."""
    if device.type != "cuda":
        return MEMORY["fp32"], f"on the {device.type.upper()}, in fp32"
    if asked != "auto":
        return MEMORY[asked], f"{asked} as asked"
    free, total = torch.cuda.mem_get_info(device)
    for name in ("fp16", "sliced"):
        if free >= ENOUGH[name]:
            return MEMORY[name], f"{free / GIB:.1f} of {total / GIB:.1f} GiB free on the GPU"
    return MEMORY["offload"], f"only {free / GIB:.1f} GiB free on the GPU"


def place(pipe, memory: Memory, device: torch.device):
    """The pipeline in `memory`'s dtype, with its switches, on `device`."""
    pipe.set_progress_bar_config(disable=True)
    if pipe.unet.dtype != memory.dtype:
        pipe.to(dtype=memory.dtype)
    if memory.sliced:
        pipe.vae.enable_slicing()
        if hasattr(pipe.unet, "enable_forward_chunking"):
            pipe.unet.enable_forward_chunking(chunk_size=1, dim=1)  # one token at a time
    if memory.offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe

"""Peak GPU memory and seconds of the diffusion engine's video pipeline, per memory switch.

    python bench/diffusion.py [--frames 8 16] [--size 512] [--steps 10] [--tiny]

SD1.5 + motion module + sparse control net at their real sizes, built from configs with random
weights (memory and time do not depend on what the weights are), run through the same memory
plans the engine picks from (paintstep.model.video.MEMORY): the plain fp32 pipeline is the
reference, measured in the same run, and every plan prints its ratio to it. Needs a CUDA GPU;
without one it says so and stops (--tiny runs tiny models on the CPU, to check the script).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np
import torch
from diffusers import AnimateDiffSparseControlNetPipeline
from paintstep.model import random_models
from paintstep.model.video import MEMORY, place
from PIL import Image

GIB = 1024**3


def pipeline(size: random_models.Size):
    parts = random_models.build(size)
    return AnimateDiffSparseControlNetPipeline(
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        unet=parts["unet"],
        motion_adapter=parts["motion_adapter"],
        controlnet=parts["controlnet"],
        scheduler=parts["scheduler"],
    )


def measure(plan: str, frames: int, side: int, steps: int, device: torch.device, size) -> tuple:
    """(peak GiB or None, seconds) for one run of 2 conditioning frames."""
    pipe = place(pipeline(size), MEMORY[plan], device)
    start = Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), np.uint8))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt="a painting of a harbour",
            width=side,
            height=side,
            num_frames=frames,
            num_inference_steps=steps,
            conditioning_frames=[start, start],
            controlnet_frame_indices=[0, frames - 1],
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() / GIB if device.type == "cuda" else None
    del pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return peak, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10, help="denoising steps per run")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU")
    args = parser.parse_args()
    if args.tiny:
        device, size, side = torch.device("cpu"), random_models.TINY, 32
        plans = ["fp32"]
    elif not torch.cuda.is_available():
        print("No CUDA GPU here: the memory figures need one (run this where one is lent).")
        return 0
    else:
        device, size, side = torch.device("cuda"), random_models.FULL, args.size
        plans = ["fp32", "fp16", "sliced", "offload"]
        print(f"GPU: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    print(f"{side} x {side}, {args.steps} denoising steps, 2 conditioning frames")
    print(f"{'frames':>6} {'plan':>8} {'peak GiB':>9} {'x fp32':>7} {'seconds':>8} {'x fp32':>7}")
    for frames in args.frames:
        reference = None
        for plan in plans:
            try:
                peak, seconds = measure(plan, frames, side, args.steps, device, size)
            except torch.OutOfMemoryError:
                print(f"{frames:>6} {plan:>8}  out of memory")
                continue
            if plan == "fp32":
                reference = (peak, seconds)
            memory = f"{peak:9.2f}" if peak is not None else f"{'-':>9}"
            ratio = (
                f"{peak / reference[0]:7.2f}" if peak and reference and reference[0] else "      -"
            )
            speed = f"{seconds / reference[1]:7.2f}" if reference else "      -"
            print(f"{frames:>6} {plan:>8} {memory} {ratio} {seconds:8.2f} {speed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

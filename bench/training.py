"""Peak GPU memory and samples per second of a `train-lora` step, per memory setting.

    python bench/training.py [--frames 16 8] [--size 512 384] [--steps 5] [--tiny]

Full-size SD1.5 + motion module + sparse control net with random weights (memory and speed do
not depend on what the weights are), saved once into --work as a user's weights are, then
trained as `paintstep train-lora` trains (the motion module's LoRA, rank 4, batch 1) under each
memory setting: fp32 without gradient checkpointing is the reference, measured in the same
run, and every setting prints its ratio to it. Each setting runs in a process of its own (a
process keeps one precision). Needs a CUDA GPU; without one it says so and stops (--tiny runs
tiny models on the CPU, to check the script). The figures go into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

GIB = 1024**3
# name: (precision, gradient checkpointing, optimizer)
SETTINGS = {
    "fp32": ("fp32", False, "adamw"),
    "bf16": ("bf16", False, "adamw"),
    "fp16": ("fp16", False, "adamw"),
    "bf16+checkpointing": ("bf16", True, "adamw"),
    "bf16+checkpointing+8bit": ("bf16", True, "adamw8bit"),
}
WARM_UP = 2  # steps before measuring: the first ones allocate and pick kernels


def save_weights(work: Path, tiny: bool) -> Path:
    """The random models in the diffusers layout and a diffusion.json listing them."""
    from paintstep.model import random_models

    config = work / "diffusion.json"
    if config.is_file():
        return config
    size = random_models.TINY if tiny else random_models.FULL
    parts = random_models.build(size)
    random_models.save_base(parts, work / "sd15")
    parts["motion_adapter"].save_pretrained(work / "motion")
    parts["controlnet"].save_pretrained(work / "control")
    device = "cpu" if tiny else "cuda"
    entries = {"base": "sd15", "motion": "motion", "control": "control", "loras": "loras"}
    config.write_text(json.dumps({**entries, "device": device}))
    return config


def save_dataset(work: Path) -> Path:
    """One small process: the run needs shards to start (the bench gives its own batches)."""
    from paintstep.dataset.shards import Sample, ShardWriter

    folder = work / "data"
    if not folder.is_dir():
        frames = [np.full((64, 64, 3), 16 * k, np.uint8) for k in range(8)]
        with ShardWriter(folder, "bench") as writer:
            writer.write(Sample("bench", frames, "a painting"))
    return folder


def measure_one(name: str, work: Path, sizes: list[int], counts: list[int], steps: int) -> None:
    """Print a JSON line per (size, frames): peak GiB and samples per second."""
    from paintstep.training.loop import Run
    from paintstep.training.settings import TrainSettings

    precision, checkpointing, optimizer = SETTINGS[name]
    settings = TrainSettings(
        data=[str(work / "data")],
        name="bench",
        weights=work / "diffusion.json",
        out=work / "bench.safetensors",
        run_dir=work / "run",
        precision=precision,
        gradient_checkpointing=checkpointing,
        optimizer=optimizer,
        sample_every=0,
        workers=0,
        quiet=True,
    )
    run = Run(settings)
    cuda = run.accelerator.device.type == "cuda"
    for side in sizes:
        for count in counts:
            batch = {"frames": torch.rand(1, count, 3, side, side) * 2 - 1, "caption": ["a"]}
            result = {"setting": name, "size": side, "frames": count}
            try:
                for _ in range(WARM_UP):
                    run.optimize(batch)
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                began = time.perf_counter()
                for _ in range(steps):
                    run.optimize(batch)
                if cuda:
                    torch.cuda.synchronize()
                result["samples_per_s"] = steps / (time.perf_counter() - began)
                result["peak_gib"] = torch.cuda.max_memory_allocated() / GIB if cuda else None
            except torch.OutOfMemoryError:
                result["out_of_memory"] = True
                run.optimizer.zero_grad()
                if cuda:
                    torch.cuda.empty_cache()
            print(json.dumps(result), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--size", type=int, nargs="+", default=[512, 384])
    parser.add_argument("--steps", type=int, default=5, help="measured steps per case")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--work", type=Path, help="where the random weights are saved (temp)")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a setting, in a process of its own
    args = parser.parse_args()
    if args.one:
        measure_one(args.one, args.work, args.size, args.frames, args.steps)
        return 0
    if args.tiny:
        names, args.size, args.frames = ["fp32"], [64], [8]
    elif not torch.cuda.is_available():
        print("No CUDA GPU here: the memory figures need one (run this where one is lent).")
        return 0
    else:
        names = args.settings
        if not torch.cuda.is_bf16_supported():
            names = [n for n in names if not n.startswith("bf16")]
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        save_weights(work, args.tiny)
        save_dataset(work)
        print(f"motion-module LoRA rank 4, batch 1, {args.steps} steps after {WARM_UP}")
        results = []
        for name in names:
            command = [sys.executable, __file__, "--one", name, "--work", str(work)]
            command += ["--size", *map(str, args.size), "--frames", *map(str, args.frames)]
            command += ["--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{name}: failed ({done.stderr.strip().splitlines()[-1:]})")
                continue
            results += [json.loads(line) for line in done.stdout.splitlines() if line[:1] == "{"]
        report(results)
    return 0


def report(results: list[dict]) -> None:
    reference = {(r["size"], r["frames"]): r for r in results if r["setting"] == "fp32"}
    print(f"{'size':>5} {'frames':>6} {'setting':>24} {'peak GiB':>9} {'x fp32':>7} ", end="")
    print(f"{'samples/s':>10} {'x fp32':>7}")
    for r in sorted(results, key=lambda r: (-r["size"], -r["frames"])):
        head = f"{r['size']:>5} {r['frames']:>6} {r['setting']:>24}"
        if r.get("out_of_memory"):
            print(f"{head}  out of memory")
            continue
        base = reference.get((r["size"], r["frames"]), {})
        peak, speed = r["peak_gib"], r["samples_per_s"]
        memory = f"{peak:9.2f}" if peak is not None else f"{'-':>9}"
        ratio = f"{peak / base['peak_gib']:7.2f}" if peak and base.get("peak_gib") else "      -"
        faster = f"{speed / base['samples_per_s']:7.2f}" if base.get("samples_per_s") else "      -"
        print(f"{head} {memory} {ratio} {speed:10.3f} {faster}")


if __name__ == "__main__":
    sys.exit(main())

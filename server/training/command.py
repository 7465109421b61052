"""`paintstep train-lora`: its options, checked before torch loads (no torch here)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..wire.errors import PaintError
from .settings import HOLDS, OPTIMIZERS, PARTS, PRECISIONS, TrainSettings, find_checkpoint

NEEDS = ("torch", "diffusers", "transformers", "peft", "accelerate")
HELP = """\
Train a painting-process LoRA for the diffusion engine on datasets that `paintstep dataset`
made, with the models that diffusion.json lists (the engine's own: SD1.5, the motion module,
the sparse control net). The LoRA is written into that file's "loras" folder as NAME.safetensors,
so `paintstep paint ... --engine diffusion -o lora=NAME` and the docker use it by name.

One GPU:   paintstep train-lora data/mine --name mystyle
More GPUs or machines (accelerate config first):
           accelerate launch -m paintstep train-lora data/mine --name mystyle
Continue a run:  the same command with --resume latest (and a larger --steps to go further).
docs/training.md says more."""


def add_train_parser(commands) -> None:
    """The `train-lora` subcommand, added to the `paintstep` command's subparsers."""
    train = commands.add_parser(
        "train-lora",
        help="train a painting-process LoRA for the diffusion engine on a dataset",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = train.add_argument
    add("data", nargs="+", metavar="DATA", help="dataset folders or shards (*.tar)")
    add("--name", required=True, help="the LoRA's name: -o lora=NAME paints with it")
    add("--weights", metavar="FILE", help="the engine's diffusion.json (its usual one)")
    add("--out", metavar="FILE", help="the LoRA file (LORAS/NAME.safetensors of --weights)")
    add("--run-dir", metavar="DIR", help="checkpoints and samples (./lora-runs/NAME)")
    add("--steps", type=int, default=2000, help="optimizer steps in all (2000)")
    add("--frames", type=int, help="frames per process (8 with ProcessPainter's weights, else 16)")
    add("--batch-size", type=int, default=1, help="processes per step and GPU (1)")
    add("--accumulate", type=int, default=1, help="batches whose gradients make one step (1)")
    add("--learning-rate", "--lr", type=float, default=1e-4, help="AdamW's (1e-4)")
    add("--rank", type=int, default=4, help="the LoRA's rank (4, as ProcessPainter)")
    add("--alpha", type=float, help="the LoRA's alpha: its scale is alpha/rank (the rank)")
    add(
        "--train",
        default="motion",
        metavar="PARTS",
        help="what the LoRA adapts, comma-separated: motion (the motion module's temporal "
        "attention), unet (its spatial attention), controlnet (the control net's) (motion)",
    )
    add(
        "--hold",
        choices=HOLDS,
        default="random",
        help="frames the control net holds per step: random (ProcessPainter's draw of 1-8 "
        "frames) or ends (frame 0, and the last half of the time, as the engine holds) (random)",
    )
    add("--caption-dropout", type=float, default=0.1, help="share of empty captions (0.1)")
    add(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto: bf16/fp16 on a GPU, fp32 on a CPU",
    )
    add(
        "--no-gradient-checkpointing",
        dest="gradient_checkpointing",
        action="store_false",
        help="keep activations (faster, much more GPU memory)",
    )
    add(
        "--optimizer",
        choices=OPTIMIZERS,
        default="auto",
        help="auto: 8-bit AdamW if bitsandbytes is installed",
    )
    add("--checkpoint-every", type=int, default=500, metavar="K", help="steps (500)")
    add("--keep-checkpoints", type=int, default=2, metavar="N", help="newest kept (2; 0: all)")
    add("--resume", metavar="latest|DIR", help="continue from the run's newest checkpoint, or DIR")
    add(
        "--sample-every",
        type=int,
        default=500,
        metavar="K",
        help="validation samples (500; 0: none)",
    )
    add("--sample-count", type=int, default=2, help="processes painted per validation (2)")
    add("--sample-steps", type=int, default=25, help="their denoising steps (25)")
    add("--seed", type=int, default=0, help="for the LoRA's start, the noise and the data order")
    add("--workers", type=int, default=2, help="data loading processes per GPU (2)")
    add(
        "--shuffle", type=int, default=64, help="samples drawn at random from a buffer of this many"
    )
    add("--quiet", "-q", action="store_true", help="print nothing but errors")
    train.set_defaults(run=run_train)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    """The run's settings, or a PaintError saying which option to change."""
    from ..model.weights import config_path, load_weights

    parts = tuple(dict.fromkeys(p.strip() for p in args.train.split(",") if p.strip()))
    unknown = [p for p in parts if p not in PARTS]
    if not parts or unknown:
        raise PaintError(f"--train takes {', '.join(PARTS)} (comma-separated), not {args.train!r}.")
    if not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise PaintError(f"A LoRA name has letters, digits, - _ and . only, not {args.name!r}.")
    for option in ("steps", "batch_size", "accumulate", "rank", "checkpoint_every"):
        if getattr(args, option) < 1:
            raise PaintError(f"--{option.replace('_', '-')} must be 1 or more.")
    if args.frames is not None and not 2 <= args.frames <= 24:
        raise PaintError("--frames must be 2 to 24 (the motion modules hold up to 24).")
    if not 0 <= args.caption_dropout <= 1:
        raise PaintError("--caption-dropout is a share, 0 to 1.")
    weights_file = Path(args.weights) if args.weights else config_path()
    weights = load_weights(weights_file)
    weights.check("video", "")
    if args.out:
        out = Path(args.out)
    elif weights.loras is not None:
        out = weights.loras / f"{args.name}.safetensors"
    else:
        raise PaintError(
            f'{weights_file} names no "loras" folder for the LoRA to go into: add one '
            '("loras": "loras"), or give --out FILE.'
        )
    run_dir = Path(args.run_dir) if args.run_dir else Path("lora-runs") / args.name
    return TrainSettings(
        data=list(args.data),
        name=args.name,
        weights=weights_file,
        out=out,
        run_dir=run_dir,
        frames=args.frames,
        steps=args.steps,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        learning_rate=args.learning_rate,
        rank=args.rank,
        alpha=args.alpha,
        parts=parts,
        hold=args.hold,
        caption_dropout=args.caption_dropout,
        precision=args.precision,
        gradient_checkpointing=args.gradient_checkpointing,
        optimizer=args.optimizer,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        resume=find_checkpoint(run_dir, args.resume) if args.resume else None,
        sample_every=args.sample_every,
        sample_count=args.sample_count,
        sample_steps=args.sample_steps,
        seed=args.seed,
        workers=args.workers,
        shuffle=args.shuffle,
        quiet=args.quiet,
    )


def run_train(args: argparse.Namespace) -> int:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise PaintError(
            f"Training needs {', '.join(missing)}, which are not installed: run "
            "`python3 install.py --diffusion`, or `pip install 'paintstep[diffusion]'`."
        )
    settings = settings_from(args)
    from ..dataset.shards import find_shards

    if not find_shards(settings.data):
        raise PaintError(
            f"There are no dataset shards (*.tar) at {' '.join(settings.data)}: make them "
            "with `paintstep dataset build` or `paintstep dataset synth`."
        )
    from .loop import train

    try:
        train(settings)
    except KeyboardInterrupt:
        print(
            f"\npaintstep: stopped; the same command with --resume latest continues from the "
            f"newest checkpoint in {settings.run_dir / 'checkpoints'}.",
            file=sys.stderr,
        )
        return 130
    return 0

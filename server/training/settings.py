"""What a training run is asked to do (no torch: the command line checks it first)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..wire.errors import PaintError

# What a LoRA can adapt: the motion module's temporal attention (ProcessPainter's choice), the
# UNet's spatial attention, the sparse control net's attention.
PARTS = ("motion", "unet", "controlnet")
HOLDS = ("random", "ends")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
OPTIMIZERS = ("auto", "adamw", "adamw8bit")
DONE = "done.json"  # written last into a checkpoint folder: it is complete


@dataclass
class TrainSettings:
    """A run's settings; `command.py` fills them from the command line."""

    data: list[str]
    name: str
    weights: Path
    out: Path  # the LoRA file the engine loads by name
    run_dir: Path  # checkpoints/, samples/
    frames: int | None = None  # None: 8 with ProcessPainter's weights (its recipe), else 16
    steps: int = 2000
    batch_size: int = 1
    accumulate: int = 1
    learning_rate: float = 1e-4
    rank: int = 4
    alpha: float | None = None  # None: the rank (a scale of 1)
    parts: tuple[str, ...] = ("motion",)
    hold: str = "random"
    caption_dropout: float = 0.1
    precision: str = "auto"
    gradient_checkpointing: bool = True
    optimizer: str = "auto"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: Path | None = None  # the checkpoint folder to continue from
    sample_every: int = 500
    sample_count: int = 2
    sample_steps: int = 25
    seed: int = 0
    workers: int = 2
    shuffle: int = 64
    max_grad_norm: float = 1.0
    quiet: bool = False

    @property
    def lora_alpha(self) -> float:
        return float(self.rank if self.alpha is None else self.alpha)


def checkpoint_folder(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def finished(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    folders = (run_dir / "checkpoints").glob("step-*")
    return sorted(f for f in folders if (f / DONE).is_file())


def find_checkpoint(run_dir: Path, resume: str) -> Path:
    """The folder `--resume` names: `latest` (the run's newest), or a checkpoint folder."""
    if resume == "latest":
        done = finished(run_dir)
        if not done:
            raise PaintError(
                f"There is no checkpoint in {run_dir / 'checkpoints'} to resume from: start "
                "without --resume, or give --run-dir the folder of the run to continue."
            )
        return done[-1]
    folder = Path(resume)
    if not (folder / DONE).is_file():
        raise PaintError(
            f"{folder} is not a complete checkpoint (a folder step-NNNNNN with {DONE}); give "
            "one of the run's checkpoints folders, or --resume latest."
        )
    return folder

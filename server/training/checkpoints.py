"""Checkpoints of a run, and resuming from one in the state the run had.

A checkpoint is a folder `RUN/checkpoints/step-NNNNNN/`: accelerate's `save_state` (the
optimizer, the gradient scaler, every process's random states) with the models replaced by
the LoRA alone (`lora.safetensors`, the file the engine loads), each process's place in the
run (`trainer-R.pt`: the step, the epoch, the batches taken in it, the training generator's
state), and `done.json`, written last, so that a checkpoint cut short is never resumed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from paintstep.wire.errors import PaintError

from .lora import load_lora, save_lora
from .settings import DONE, checkpoint_folder, finished

LORA = "lora.safetensors"


def register_hooks(accelerator, adapted: dict[str, torch.nn.Module]) -> None:
    """Make accelerate's save_state/load_state keep the LoRA only, not whole models."""

    def save(models, weights, folder) -> None:
        if accelerator.is_main_process:
            save_lora(Path(folder) / LORA, adapted)
        weights.clear()  # accelerate saves the models that are left in it: none

    def load(models, folder) -> None:
        load_lora(Path(folder) / LORA, adapted)
        models.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def save_checkpoint(accelerator, run_dir: Path, place: dict, keep: int) -> Path:
    """Save the run's state at `place["step"]` (every process calls this); older complete
    checkpoints beyond `keep` are removed."""
    folder = checkpoint_folder(run_dir, place["step"])
    accelerator.save_state(str(folder))
    torch.save(place, folder / f"trainer-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (folder / DONE).write_text(json.dumps({"step": place["step"]}))
        for old in finished(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_checkpoint(accelerator, folder: Path) -> dict:
    """Restore the state `save_checkpoint` saved in `folder`; this process's place in it."""
    mine = folder / f"trainer-{accelerator.process_index}.pt"
    if not mine.is_file():
        raise PaintError(
            f"{folder} was saved by a run with fewer processes than this one "
            f"({accelerator.num_processes}): resume it with as many as it had."
        )
    accelerator.load_state(str(folder))
    return torch.load(mine, weights_only=True)

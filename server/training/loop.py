"""The training run: the engine's models with a LoRA, trained on processes with accelerate.

The same script runs alone, or as each process of `accelerate launch` (several GPUs, several
machines): accelerate's Accelerator sets up the processes, wraps the LoRA's models for data
parallel training and averages their gradients; the dataset deals its shards to the processes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from paintstep.cli.paint import ProgressBar
from paintstep.dataset.torch_dataset import ProcessDataset, collate
from paintstep.model import video
from paintstep.model.diffusion import PROCESSPAINTER
from paintstep.model.memory import Memory
from paintstep.model.weights import load_weights
from paintstep.wire.errors import PaintError
from torch.utils.data import DataLoader

from . import checkpoints
from .lora import add_lora, save_lora, trainable
from .samples import validation_prompts, write_samples
from .settings import TrainSettings
from .step import Denoiser

log = logging.getLogger("paintstep.training")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MIXED = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}
LOSS_SMOOTHING = 0.9  # the loss shown is an exponential average over the last ~10 steps


def precision_for(asked: str, cpu: bool) -> str:
    """fp32 on the CPU; bf16 on a GPU that has it, else fp16 (auto)."""
    if cpu:
        return "fp32"
    if asked != "auto":
        return asked
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_optimizer(parameters, settings: TrainSettings, on_gpu: bool, say):
    """8-bit AdamW (bitsandbytes) when it is there and on a GPU, else torch's AdamW."""
    options = dict(lr=settings.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    if settings.optimizer in ("auto", "adamw8bit") and on_gpu:
        try:
            import bitsandbytes

            return bitsandbytes.optim.AdamW8bit(parameters, **options)
        except ImportError:
            if settings.optimizer == "adamw8bit":
                raise PaintError(
                    "--optimizer adamw8bit needs bitsandbytes: `pip install bitsandbytes`, "
                    "or leave --optimizer at auto."
                ) from None
            say("bitsandbytes is not installed: AdamW in 32 bits (`pip install bitsandbytes`)")
    elif settings.optimizer == "adamw8bit":
        raise PaintError("--optimizer adamw8bit needs a CUDA GPU; on the CPU use adamw.")
    return torch.optim.AdamW(parameters, **options)


class Run:
    """One training run, in this process."""

    def __init__(self, settings: TrainSettings) -> None:
        self.settings = settings
        weights = load_weights(settings.weights)
        weights.check("video", "")
        cpu = weights.device == "cpu" or not torch.cuda.is_available()
        self.precision = precision_for(settings.precision, cpu)
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=MIXED[self.precision],
            gradient_accumulation_steps=settings.accumulate,
        )
        self.main = self.accelerator.is_main_process
        set_seed(settings.seed)  # the LoRA starts alike in every process
        memory = Memory(self.precision, DTYPES[self.precision], sliced=False, offload=False)
        self.model = video.Video(("training",), weights, memory, self.accelerator.device)
        pipe = self.model.pipe
        self.frames = settings.frames or (
            PROCESSPAINTER["frames"] if self.model.processpainter else 16
        )
        self.adapted = add_lora(pipe, settings.parts, settings.rank, settings.lora_alpha)
        parameters = trainable(self.adapted)
        for parameter in parameters:  # the LoRA learns in fp32, the frozen model runs in dtype
            parameter.data = parameter.data.float()
        if settings.gradient_checkpointing:
            for model in self.adapted.values():
                model.enable_gradient_checkpointing()
            pipe.unet.enable_gradient_checkpointing()
        optimizer = make_optimizer(parameters, settings, not cpu, self.say)
        *wrapped, self.optimizer = self.accelerator.prepare(*self.adapted.values(), optimizer)
        models = dict(zip(self.adapted, wrapped))
        self.denoiser = Denoiser(
            unet=models.get("unet", pipe.unet),
            controlnet=models.get("controlnet", pipe.controlnet),
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            scheduler=pipe.scheduler,
            train_controlnet="controlnet" in models,
            hold=settings.hold,
            caption_dropout=settings.caption_dropout,
        )
        self.parameters = parameters
        checkpoints.register_hooks(self.accelerator, self.adapted)
        self.data = ProcessDataset(
            settings.data, frames=self.frames, shuffle=settings.shuffle, seed=settings.seed
        )
        rank = self.accelerator.process_index
        self.generator = torch.Generator().manual_seed(settings.seed * 7919 + rank)
        self.step, self.epoch, self.taken = 0, 0, 0

    def say(self, text: str) -> None:
        if self.main and not self.settings.quiet:
            print(text, file=sys.stderr, flush=True)

    def place(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "taken": self.taken,
            "generator": self.generator.get_state(),
        }

    def resume(self, folder: Path) -> None:
        place = checkpoints.load_checkpoint(self.accelerator, folder)
        self.step, self.epoch, self.taken = place["step"], place["epoch"], place["taken"]
        self.generator.set_state(place["generator"])
        self.say(f"Resumed from {folder} at step {self.step}.")

    def batches(self) -> Iterator[dict]:
        """Batches without end, epoch after epoch, from where the run stands (a resumed run
        passes over the batches its epoch had already taken)."""
        settings = self.settings
        while True:
            self.data.set_epoch(self.epoch)
            loader = DataLoader(
                self.data,
                batch_size=settings.batch_size,
                num_workers=settings.workers,
                collate_fn=collate,
                drop_last=True,
            )
            seen = 0
            for index, batch in enumerate(same_sizes(loader)):
                seen += 1
                if index < self.taken:
                    continue
                self.taken = index + 1
                yield batch
            if seen == 0:
                raise PaintError(
                    f"The dataset at {' '.join(settings.data)} gives no batch of "
                    f"{settings.batch_size} to this process: lower --batch-size, or add processes."
                )
            self.epoch, self.taken = self.epoch + 1, 0

    def loss(self, batch: dict) -> torch.Tensor:
        with self.accelerator.autocast():
            return self.denoiser.loss(batch["frames"], batch["caption"], self.generator)

    def optimize(self, batch: dict) -> float:
        """One batch's forward and backward pass, and the optimizer's step once the
        gradients of `accumulate` batches are in; the batch's loss."""
        accelerator = self.accelerator
        with accelerator.accumulate(*self.adapted.values()):
            loss = self.loss(batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        return float(loss.detach())

    def train(self) -> Path:
        """Train to `settings.steps`; the LoRA file's path."""
        settings, accelerator = self.settings, self.accelerator
        if settings.resume:
            self.resume(settings.resume)
        self.prompts = validation_prompts(settings.data, settings.sample_count) if self.main else []
        bar = ProgressBar(
            settings.steps, sys.stderr, enabled=self.main and not settings.quiet, title="Training"
        )
        began, first, shown = time.perf_counter(), self.step, None
        self.say(self.describe())
        batches = self.batches()
        while self.step < settings.steps:
            value = self.optimize(next(batches))
            shown = (
                value if shown is None else LOSS_SMOOTHING * shown + (1 - LOSS_SMOOTHING) * value
            )
            if not accelerator.sync_gradients:
                continue
            self.step += 1
            seconds = (time.perf_counter() - began) / (self.step - first)
            left = format_seconds(seconds * (settings.steps - self.step))
            bar.update(
                self.step, f"step {self.step}/{settings.steps}  loss {shown:.4f}  ETA {left}"
            )
            if not bar.enabled and self.step % max(1, settings.steps // 20) == 0:
                self.say(f"step {self.step}/{settings.steps}: loss {shown:.4f}, ETA {left}")
            self.at_step_end()
        bar.close()
        return self.finish()

    def at_step_end(self) -> None:
        settings, step = self.settings, self.step
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            checkpoints.save_checkpoint(
                self.accelerator, settings.run_dir, self.place(), settings.keep_checkpoints
            )
        sampling = settings.sample_every and step % settings.sample_every == 0
        if (sampling or (settings.sample_every and step == settings.steps)) and self.prompts:
            self.sample()
        self.accelerator.wait_for_everyone()

    def sample(self) -> None:
        options = {
            "frames": self.frames,
            "sampling_steps": self.settings.sample_steps,
            "guidance": PROCESSPAINTER["guidance"] if self.model.processpainter else 7.5,
            "control": 1.0,
            "inversion": "auto",
            "lora": "",  # the LoRA being trained is in the models already
            "lora_scale": 1.0,
        }
        with torch.no_grad():
            write_samples(
                self.model, self.prompts, options, self.settings.run_dir / "samples", self.step
            )

    def finish(self) -> Path:
        settings = self.settings
        self.accelerator.wait_for_everyone()
        if self.main:
            save_lora(settings.out, self.adapted)
            self.say(
                f"Wrote the LoRA {settings.out}; paint with it: -o lora={settings.name} "
                f"(checkpoints and samples in {settings.run_dir})."
            )
        self.accelerator.end_training()
        return settings.out

    def describe(self) -> str:
        settings = self.settings
        count = sum(p.numel() for p in self.parameters)
        return (
            f"Training the LoRA {settings.name!r} ({', '.join(settings.parts)}, rank "
            f"{settings.rank}, {count:,} weights) on {self.accelerator.num_processes} "
            f"process(es), {self.accelerator.device.type}, {self.precision}: {self.frames} frames, "
            f"batch {settings.batch_size} x {settings.accumulate} per process, steps "
            f"{self.step + 1}-{settings.steps}."
        )


def same_sizes(loader: DataLoader) -> Iterator[dict]:
    """The loader's batches; a batch of processes of different sizes is a sentence."""
    batches = iter(loader)
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return
        except RuntimeError as error:
            if "stack expects each tensor to be equal size" not in str(error):
                raise
            raise PaintError(
                "A batch met processes of different sizes: train with --batch-size 1, or on a "
                "dataset built with one --size from pictures of one shape."
            ) from None


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def train(settings: TrainSettings) -> Path:
    return Run(settings).train()

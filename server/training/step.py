"""One training step's loss: the process's frames noised, denoised as the engine denoises them.

The frames go through the VAE, noise is added at a random timestep (the pipeline's own noise
schedule), the sparse control net sees the held frames as the pipeline's conditioning and the
motion UNet predicts the noise (or the velocity, for v-prediction models) with the control
net's residuals: the same calls as one denoising step of AnimateDiffSparseControlNetPipeline.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .conditioning import control_inputs, held_frames

VAE_CHUNK = 8  # frames encoded at once: the VAE's activations at 512 px are large


@dataclass
class Denoiser:
    """The pipeline's parts a step runs; `unet` and `controlnet` may be accelerate's
    wrappers of the pipeline's own (those being trained)."""

    unet: torch.nn.Module
    controlnet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object
    train_controlnet: bool
    hold: str = "random"
    caption_dropout: float = 0.0

    def loss(self, frames: torch.Tensor, captions: list[str], generator: torch.Generator):
        """The step's loss for frames (B, F, 3, H, W) in [-1, 1]; every random draw (the VAE's
        sample, the noise, the timesteps, the held frames, the dropped captions) comes from
        `generator`, so a checkpoint that keeps its state resumes the same run."""
        count = frames.shape[1]
        with torch.no_grad():
            latents = self.encode_frames(frames, generator)
            dropped = torch.rand(len(captions), generator=generator) < self.caption_dropout
            text = self.encode_captions(["" if d else c for c, d in zip(captions, dropped)])
            text = text.repeat_interleave(count, dim=0)  # a caption per frame, as the pipeline
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        total = self.scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, total, (latents.shape[0],), generator=generator)
        timesteps = timesteps.to(latents.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        cond, mask = control_inputs(latents, held_frames(count, self.hold, generator))
        control = contextlib.nullcontext() if self.train_controlnet else torch.no_grad()
        with control:
            down, middle = self.controlnet(
                noisy,
                timesteps,
                encoder_hidden_states=text,
                controlnet_cond=cond,
                conditioning_mask=mask,
                conditioning_scale=1.0,
                guess_mode=False,
                return_dict=False,
            )
        predicted = self.unet(
            noisy,
            timesteps,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=middle,
        ).sample
        return F.mse_loss(predicted.float(), target.float())

    def encode_frames(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, F, 3, H, W) pixels to (B, 4, F, h, w) latents, scaled as the pipeline scales."""
        vae = self.vae
        batch, count = frames.shape[:2]
        flat = frames.flatten(0, 1).to(vae.device, vae.dtype)
        parts = [
            vae.encode(part).latent_dist.sample(generator=generator)
            for part in flat.split(VAE_CHUNK)
        ]
        latents = torch.cat(parts) * vae.config.scaling_factor
        return latents.unflatten(0, (batch, count)).transpose(1, 2)

    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        tokenizer = self.tokenizer
        ids = tokenizer(
            captions,
            max_length=tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

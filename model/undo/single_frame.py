"""Paints-UNDO's single-frame model: SD1.5's UNet that makes an earlier state of a picture.

Paints-UNDO (diffusers_helper/cat_cond.py, code_cond.py) builds it from a diffusers
UNet2DConditionModel in two changes:
- 4 more input channels: the finished picture's VAE latent, concatenated to the noisy latent
  (`conv_in` becomes 8 x 320, its first 4 input channels SD1.5's);
- the operation step (0-999) embedded like a timestep, 256 sinusoids (cos first, no shift) and
  a two-layer MLP to the time embedding's 1280, added to the time embedding
  (`add_embedding.linear_1/2`).
diffusers computes exactly the second with `addition_embed_type="text_time"` given an empty text
embedding and the step as its `time_ids`, so the model here is a plain UNet2DConditionModel
with an explicit config, and the released weights load into it strictly, key for key.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from paintstep.process import PaintError

from .loading import built_empty, load_strictly, read_config

LATENT_CHANNELS = 4  # the noisy latent's, and as many again for the finished picture's
STEP_SINUSOIDS = 256  # Paints-UNDO's Timesteps(256, True, 0)
FILE = "diffusion_pytorch_model.safetensors"


def unet_config(released: dict[str, Any]) -> dict[str, Any]:
    """Our UNet2DConditionModel config for the released unet/config.json (SD1.5's, which
    Paints-UNDO widens and extends in code after building the model from it)."""
    known = inspect.signature(UNet2DConditionModel.__init__).parameters
    config = {k: v for k, v in released.items() if k in known and k != "self"}
    if config.get("flip_sin_to_cos", True) is not True or config.get("freq_shift", 0) != 0:
        raise PaintError(
            "The single-frame UNet's config embeds timesteps unlike SD1.5 (flip_sin_to_cos "
            "true, freq_shift 0), so it is not Paints-UNDO's; download it again."
        )
    return {
        **config,
        "in_channels": config.get("in_channels", LATENT_CHANNELS) + LATENT_CHANNELS,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": STEP_SINUSOIDS,
        "projection_class_embeddings_input_dim": STEP_SINUSOIDS,
    }


def load_unet(folder: Path) -> UNet2DConditionModel:
    """The single-frame UNet from the released `unet` folder, every weight strictly (fp32)."""
    config = unet_config(read_config(folder / "config.json"))
    unet = built_empty(lambda: UNet2DConditionModel(**config))
    return load_strictly(unet, folder / FILE, "Paints-UNDO's single-frame UNet")


def predict_noise(
    unet: UNet2DConditionModel,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    text: torch.Tensor,
    finished: torch.Tensor,
    operation_steps: torch.Tensor,
) -> torch.Tensor:
    """The noise in `latents` (B, 4, h, w) at `timesteps` (B), for earlier states of the
    picture whose latent is `finished` (1 or B, 4, h, w) at `operation_steps` (B, 0-999)."""
    batch = latents.shape[0]
    finished = finished.expand(batch, -1, -1, -1).to(latents)
    steps = operation_steps.to(latents.device).reshape(batch, 1)
    return unet(
        torch.cat([latents, finished], dim=1),
        timesteps,
        encoder_hidden_states=text,
        added_cond_kwargs={"text_embeds": latents.new_zeros(batch, 0), "time_ids": steps},
        return_dict=False,
    )[0]

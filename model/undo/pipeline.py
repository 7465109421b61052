"""Paints-UNDO's models loaded from its released folders and run as its demo runs them
(gradio_app.py), on torch (imported only for the paints-undo engine's jobs)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image

from ..memory import device_of
from .loading import built_empty, load_strictly, read_config, reading
from .sampler import KarrasSampler
from .single_frame import load_unet, predict_noise
from .weights import UndoWeights

log = logging.getLogger("paintstep.paints_undo")

# As for the diffusion engine (video.py): diffusers' and transformers' notices stay quiet.
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class Cancelled(Exception):
    pass


def load_vae(folder: Path):
    from diffusers import AutoencoderKL

    config = read_config(folder / "config.json")
    vae = built_empty(lambda: AutoencoderKL.from_config(config))
    return load_strictly(vae, folder / "diffusion_pytorch_model.safetensors", "SD1.5's VAE")


def load_text_encoder(folder: Path, what: str):
    from transformers import CLIPTextConfig, CLIPTextModel

    with reading(folder / "config.json", what):
        config = CLIPTextConfig.from_json_file(folder / "config.json")
    model = built_empty(lambda: CLIPTextModel(config))
    # The release was written by transformers 4 (keys "text_model.…"); transformers 5's
    # CLIPTextModel holds the same modules without that level.
    own = any(key.startswith("text_model.") for key in model.state_dict())
    return load_strictly(model, folder / "model.safetensors", what, "" if own else "text_model.")


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    with reading(folder, "the CLIP tokenizer"):
        return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def encode_prompt(tokenizer, text_encoder, prompt: str) -> torch.Tensor:
    """The prompt's 77 token states, cropped or padded (Paints-UNDO's
    encode_cropped_prompt_77tokens)."""
    ids = tokenizer(
        prompt,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(text_encoder.device)
    return text_encoder(ids, attention_mask=None).last_hidden_state


def pixels_in(picture: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An (H, W, 3) uint8 picture as the VAE takes it: (1, 3, h, w) in -1..1 at `size`."""
    image = Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS)
    values = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1)
    return values.permute(2, 0, 1)[None]


def pixels_out(pixels: torch.Tensor) -> np.ndarray:
    """(B, 3, h, w) in -1..1 as (B, h, w, 3) floats 0-1."""
    return (pixels.float().clamp(-1, 1) * 0.5 + 0.5).permute(0, 2, 3, 1).cpu().numpy()


def placed(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The model on `device` in `dtype` (loaded in fp32; cast only when another is wanted)."""
    model = model.to(device)
    return model if dtype == torch.float32 else model.to(dtype)


# One model runs at a time: the GPU is shared with the diffusion engine's jobs.
GPU = threading.RLock()


class SingleFrame:
    """The single-frame model's parts (UNet, VAE, CLIP text encoder, tokenizer), kept loaded
    between jobs."""

    loaded: ClassVar[SingleFrame | None] = None

    def __init__(self, folder: Path, device: torch.device) -> None:
        self.folder = folder
        self.device = device
        # Paints-UNDO: fp16 UNet and text encoder, a bfloat16 VAE; fp32 on the CPU.
        half = device.type == "cuda"
        self.dtype = torch.float16 if half else torch.float32
        vae_dtype = torch.bfloat16 if half else torch.float32
        what = "the single-frame model's CLIP text encoder"
        self.unet = placed(load_unet(folder / "unet"), device, self.dtype)
        self.vae = placed(load_vae(folder / "vae"), device, vae_dtype)
        self.text_encoder = placed(
            load_text_encoder(folder / "text_encoder", what), device, self.dtype
        )
        self.tokenizer = load_tokenizer(folder / "tokenizer")
        self.sampler = KarrasSampler()

    @classmethod
    @contextlib.contextmanager
    def session(cls, weights: UndoWeights) -> Iterator[SingleFrame]:
        assert weights.single_frame is not None
        device = device_of(weights)
        with GPU:
            loaded = cls.loaded
            if loaded is None or (loaded.folder, loaded.device) != (weights.single_frame, device):
                cls.loaded = None
                log.info("loading Paints-UNDO's single-frame model on %s", device)
                cls.loaded = cls(weights.single_frame, device)
            yield cls.loaded

    @torch.inference_mode()
    def earlier_states(
        self,
        picture: np.ndarray,
        size: tuple[int, int],
        prompt: str,
        negative: str,
        operation_steps: list[int],
        sampling_steps: int,
        guidance: float,
        seed: int,
        cancel: threading.Event,
        report: Callable[[float], None],
    ) -> np.ndarray | None:
        """The picture's earlier states at `operation_steps` (K, h, w, 3 floats 0-1, in that
        order), all from the same noise as Paints-UNDO's demo draws them; None when
        cancelled."""
        vae = self.vae
        scale = vae.config.scaling_factor
        pixels = pixels_in(picture, size).to(self.device, vae.dtype)
        finished = (vae.encode(pixels).latent_dist.mode() * scale).to(self.dtype)
        count = len(operation_steps)
        texts = [encode_prompt(self.tokenizer, self.text_encoder, p) for p in (prompt, negative)]
        text = torch.cat([t.expand(count, -1, -1) for t in texts]).to(self.dtype)
        steps = torch.tensor(operation_steps * 2, dtype=torch.long, device=self.device)

        def noise(x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
            both = predict_noise(
                self.unet,
                x.repeat(2, 1, 1, 1).to(self.dtype),
                timesteps.repeat(2),
                text,
                finished,
                steps,
            ).float()
            positive, negative_noise = both.chunk(2)
            return negative_noise + guidance * (positive - negative_noise)

        def step_end(i: int) -> None:
            if cancel.is_set():
                raise Cancelled
            report((i + 1) / sampling_steps)

        generator = torch.Generator("cpu").manual_seed(seed)
        sigmas = self.sampler.karras_sigmas(sampling_steps).to(self.device)
        first = torch.randn(finished.shape, generator=generator).to(self.device)
        x = first.repeat(count, 1, 1, 1) * sigmas[0]  # from zeros: noise alone
        try:
            latents = self.sampler.sample(noise, x, sigmas, step_end)
        except Cancelled:
            return None
        decoded = [vae.decode(latent[None].to(vae.dtype) / scale).sample for latent in latents]
        return pixels_out(torch.cat(decoded))

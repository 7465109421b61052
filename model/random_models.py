"""Stable Diffusion 1.5, motion module and sparse control net built from configs, random weights.

No weights can be downloaded where Paintstep is tested, so the tests build tiny versions of every
component the diffusion engine loads (and save them the ways a user's weights come), and the
benchmark builds them at full SD1.5 size: memory and time do not depend on what the weights are.
Imports torch and diffusers; only the tests and benchmarks use this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    MotionAdapter,
    SparseControlNetModel,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer


@dataclass(frozen=True)
class Size:
    """The sizes that set a model's shape; FULL is SD1.5's, TINY runs in a second on a CPU."""

    channels: tuple[int, ...]
    layers: int
    groups: int
    text_width: int
    text_layers: int
    vae_channels: tuple[int, ...]
    vae_groups: int
    embedding_channels: tuple[int, ...]


FULL = Size((320, 640, 1280, 1280), 2, 32, 768, 12, (128, 256, 512, 512), 32, (16, 32, 96, 256))
TINY = Size((32, 64), 1, 32, 32, 2, (8, 8, 16, 16), 4, (8, 16))

HEADS = 8  # SD1.5's attention_head_dim (its number of heads) and the motion modules' heads
SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="linear",
    clip_sample=False,
    steps_offset=1,
    timestep_spacing="linspace",
)


def unet(size: Size) -> UNet2DConditionModel:
    blocks = len(size.channels)
    return UNet2DConditionModel(
        sample_size=64,
        block_out_channels=size.channels,
        layers_per_block=size.layers,
        down_block_types=("CrossAttnDownBlock2D",) * (blocks - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (blocks - 1),
        cross_attention_dim=size.text_width,
        attention_head_dim=HEADS,
        norm_num_groups=size.groups,
    )


def motion_adapter(size: Size) -> MotionAdapter:
    return MotionAdapter(
        block_out_channels=size.channels,
        motion_layers_per_block=size.layers,
        motion_num_attention_heads=HEADS,
        motion_norm_num_groups=size.groups,
        motion_max_seq_length=32,
        use_motion_mid_block=False,
    )


def control_net(size: Size) -> SparseControlNetModel:
    blocks = len(size.channels)
    return SparseControlNetModel(
        block_out_channels=size.channels,
        layers_per_block=size.layers,
        down_block_types=("CrossAttnDownBlockMotion",) * (blocks - 1) + ("DownBlockMotion",),
        cross_attention_dim=size.text_width,
        attention_head_dim=HEADS,
        norm_num_groups=size.groups,
        conditioning_embedding_out_channels=size.embedding_channels,
        conditioning_channels=4,
        concat_conditioning_mask=True,
        use_simplified_condition_embedding=True,
        motion_num_attention_heads=HEADS,
        motion_max_seq_length=32,
    )


def vae(size: Size) -> AutoencoderKL:
    blocks = len(size.vae_channels)
    return AutoencoderKL(
        block_out_channels=size.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        latent_channels=4,
        layers_per_block=1 if size is TINY else 2,
        norm_num_groups=size.vae_groups,
        sample_size=512,
    )


def text_encoder(size: Size) -> CLIPTextModel:
    config = CLIPTextConfig(
        hidden_size=size.text_width,
        intermediate_size=size.text_width * 4,
        num_hidden_layers=size.text_layers,
        num_attention_heads=12 if size is FULL else 4,
        vocab_size=49408 if size is FULL else tokenizer().vocab_size,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def tokenizer() -> CLIPTokenizer:
    """A byte-level tokenizer: every byte a token, no merges. The vocabulary and merges go in
    as objects: transformers 5 ignores file arguments given to a tokenizer built by hand."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in byte_characters():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def byte_characters() -> list[str]:
    """The characters byte-level BPE writes bytes as: printable Latin-1 bytes stand for
    themselves, the others are moved up past 255 so that none is a space or control code."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    moved = (b for b in range(256) if b not in printable)
    table = {b: chr(b) for b in printable}
    table.update({b: chr(256 + n) for n, b in enumerate(moved)})
    return [table[b] for b in range(256)]


def stir(model: torch.nn.Module, generator: torch.Generator, scale: float = 0.05) -> None:
    """Give layers that start at zero random values: a control net's and a motion module's
    output layers are zero-initialised, so untouched they would change nothing and a test of
    conditioning or motion would pass without exercising them."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def build(size: Size = TINY, seed: int = 0) -> dict:
    """Every component, seeded: unet, vae, text_encoder, tokenizer, scheduler,
    motion_adapter, controlnet."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    parts = {
        "unet": unet(size),
        "vae": vae(size),
        "text_encoder": text_encoder(size),
        "tokenizer": tokenizer(),
        "scheduler": DDIMScheduler(**SCHEDULER),
        "motion_adapter": motion_adapter(size),
        "controlnet": control_net(size),
    }
    stir(parts["motion_adapter"], generator)
    stir(parts["controlnet"], generator, scale=0.5 if size is TINY else 0.05)
    if size is TINY:
        calibrate(parts["vae"])
    return parts


def calibrate(vae: AutoencoderKL) -> None:
    """Set the VAE's scaling factor so that its latents have unit spread, as SD1.5's 0.18215
    does for its own VAE. A random VAE's latents are tiny, and the conditioning frames the
    control net sees are such latents: uncalibrated, they would barely reach it."""
    ramp = torch.linspace(-1, 1, 64)
    picture = torch.stack([ramp[None, :].expand(64, 64), ramp[:, None].expand(64, 64)] * 2)[:3]
    with torch.no_grad():
        latents = vae.encode(picture[None]).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1 / latents.std()))


def save_base(parts: dict, folder: Path) -> Path:
    """The SD1.5 part in the diffusers folder layout, as `save_pretrained` writes it."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        unet=parts["unet"],
        vae=parts["vae"],
        text_encoder=parts["text_encoder"],
        tokenizer=parts["tokenizer"],
        scheduler=parts["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder

"""Diffusers models' weights under the names an original (LDM / CompVis) SD1.5 checkpoint uses.

Users' SD1.5 fine-tunes come as one .safetensors/.ckpt file in the layout of the original
Stable Diffusion code, which diffusers' `from_single_file` renames as it loads. No such file can
be downloaded where the tests run, so they write one from the tiny random models: `to_ldm` is
the inverse of diffusers' convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint and
convert_ldm_clip_checkpoint for SD1.5's architecture, any number of blocks and layers per block.
"""

from __future__ import annotations

import torch

UNET, VAE, TEXT = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."

# The sub-layers that are named differently inside a resnet / the VAE's attention.
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def to_ldm(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """The three models' weights in one state dict, named as in an SD1.5 checkpoint file."""
    state = {}
    for prefix, model, names in ((UNET, unet, unet_names), (VAE, vae, vae_names)):
        table = names(model.config)
        for key, tensor in model.state_dict().items():
            if model is vae and tensor.ndim == 2:  # the attention's linears are 1x1 convs there
                tensor = tensor[:, :, None, None]
            state[prefix + rename(key, table)] = tensor
    for key, tensor in text_encoder.state_dict().items():  # HF CLIP's own names
        state[f"{TEXT}text_model.{key.removeprefix('text_model.')}"] = tensor
    return {key: tensor.detach().clone().contiguous() for key, tensor in state.items()}


def rename(key: str, table: dict[str, str]) -> str:
    """`key` with its longest module path found in `table` replaced."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:end])
        if head in table:
            return ".".join([table[head], *parts[end:]])
    raise KeyError(f"no LDM name for {key}")


def add(table: dict[str, str], diffusers: str, ldm: str, inner: dict | None = None) -> None:
    """A module's LDM name, and those of its sub-layers that are named differently there."""
    table[diffusers] = ldm
    table.update({f"{diffusers}.{a}": f"{ldm}.{b}" for a, b in (inner or {}).items()})


def unet_names(config) -> dict[str, str]:
    """input_blocks: conv_in, then per block its layers (resnet .0, attention .1) and the
    downsampler (.0.op) in a row of its own; output_blocks: per block layers + 1 rows, the
    upsampler in the last row after the resnet and attention; middle_block: resnet, attention,
    resnet."""
    layers, rows = config.layers_per_block, config.layers_per_block + 1
    table = {
        "conv_in": "input_blocks.0.0",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    add(table, "mid_block.resnets.0", "middle_block.0", UNET_RESNET)
    add(table, "mid_block.attentions.0", "middle_block.1")
    add(table, "mid_block.resnets.1", "middle_block.2", UNET_RESNET)
    for block in range(len(config.block_out_channels)):
        down, up = f"down_blocks.{block}", f"up_blocks.{block}"
        for layer in range(layers):
            row = 1 + block * rows + layer
            add(table, f"{down}.resnets.{layer}", f"input_blocks.{row}.0", UNET_RESNET)
            add(table, f"{down}.attentions.{layer}", f"input_blocks.{row}.1")
        add(table, f"{down}.downsamplers.0.conv", f"input_blocks.{rows * (block + 1)}.0.op")
        for layer in range(rows):
            row = block * rows + layer
            add(table, f"{up}.resnets.{layer}", f"output_blocks.{row}.0", UNET_RESNET)
            add(table, f"{up}.attentions.{layer}", f"output_blocks.{row}.1")
        place = 2 if config.up_block_types[block].startswith("CrossAttn") else 1
        add(table, f"{up}.upsamplers.0", f"output_blocks.{row}.{place}")
    return table


def vae_names(config) -> dict[str, str]:
    """encoder.down.N.block.M and decoder.up.N.block.M, the decoder's blocks numbered from the
    lowest resolution up (the reverse of diffusers' up_blocks); mid.block_1, attn_1, block_2."""
    blocks, layers = len(config.block_out_channels), config.layers_per_block
    table = {"quant_conv": "quant_conv", "post_quant_conv": "post_quant_conv"}
    for part in ("encoder", "decoder"):
        add(table, f"{part}.conv_in", f"{part}.conv_in")
        add(table, f"{part}.conv_norm_out", f"{part}.norm_out")
        add(table, f"{part}.conv_out", f"{part}.conv_out")
        add(table, f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", VAE_RESNET)
        add(table, f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", VAE_ATTENTION)
        add(table, f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", VAE_RESNET)
    for block in range(blocks):
        down, up = f"encoder.down_blocks.{block}", f"decoder.up_blocks.{block}"
        ldm_down, ldm_up = f"encoder.down.{block}", f"decoder.up.{blocks - 1 - block}"
        for layer in range(layers):
            add(table, f"{down}.resnets.{layer}", f"{ldm_down}.block.{layer}", VAE_RESNET)
        for layer in range(layers + 1):
            add(table, f"{up}.resnets.{layer}", f"{ldm_up}.block.{layer}", VAE_RESNET)
        add(table, f"{down}.downsamplers.0", f"{ldm_down}.downsample")
        add(table, f"{up}.upsamplers.0", f"{ldm_up}.upsample")
    return table

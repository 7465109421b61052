"""Tiny Paints-UNDO models with random weights, saved as lllyasviel/paints_undo_* release them.

No weights can be downloaded where the tests run, so these re-create Paints-UNDO's own code
(gradio_app.py's ModifiedUNet: diffusers_helper/cat_cond.py and code_cond.py) on tiny configs
and write its state dicts, so that the key names are those of its modules, not of ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from paintstep.model import random_models
from safetensors.torch import save_file


def paints_undo_unet(seed: int = 0) -> UNet2DConditionModel:
    """Paints-UNDO's ModifiedUNet on a tiny SD1.5 config: conv_in widened by 4 channels (the
    first 4 SD1.5's, the rest zero there; random here, so that they matter), and the operation
    step's embedding (add_time_proj, add_embedding) with get_aug_embed replaced."""
    torch.manual_seed(seed)
    unet = random_models.unet(random_models.TINY)
    with torch.no_grad():
        old = unet.conv_in
        new = torch.nn.Conv2d(8, old.out_channels, old.kernel_size, old.stride, old.padding)
        new.weight.zero_()
        new.weight[:, :4, :, :].copy_(old.weight)
        new.weight[:, 4:, :, :].normal_(0, 0.1)
        new.bias = old.bias
        unet.conv_in = new
    time_embed_dim = unet.time_embedding.linear_2.out_features  # 1280 in SD1.5
    unet.add_time_proj = Timesteps(256, True, 0)
    unet.add_embedding = TimestepEmbedding(256 * 1, time_embed_dim)

    def get_aug_embed(emb, encoder_hidden_states, added_cond_kwargs):
        coded_conds = added_cond_kwargs.get("coded_conds")
        batch_size = coded_conds.shape[0]
        time_embeds = unet.add_time_proj(coded_conds.flatten())
        time_embeds = time_embeds.reshape((batch_size, -1))
        time_embeds = time_embeds.to(emb)
        return unet.add_embedding(time_embeds)

    unet.get_aug_embed = get_aug_embed
    return unet


def paints_undo_noise(unet, sample, timestep, text, concat_conds, coded_conds):
    """ModifiedUNet's hooked forward, as KModel calls it."""
    concat_conds = torch.cat([concat_conds] * (sample.shape[0] // concat_conds.shape[0]), dim=0)
    coded_conds = torch.cat([coded_conds] * (sample.shape[0] // coded_conds.shape[0]), dim=0)
    new_sample = torch.cat([sample, concat_conds.to(sample)], dim=1)
    return unet(
        new_sample,
        timestep,
        text,
        added_cond_kwargs=dict(coded_conds=coded_conds),
        return_dict=False,
    )[0]


def save_single_frame(root: Path) -> Path:
    """The folder paints_undo_single_frame as on Hugging Face (unet, vae, text_encoder,
    tokenizer), tiny; its path."""
    unet = paints_undo_unet()
    (root / "unet").mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in unet.state_dict().items()},
        str(root / "unet" / "diffusion_pytorch_model.safetensors"),
    )
    # ModelMixin.save_pretrained writes the config the model was built from (in_channels 4).
    config = {"_class_name": "ModifiedUNet", "_diffusers_version": "0.28.0", **unet.config}
    (root / "unet" / "config.json").write_text(json.dumps(config))
    parts = random_models.build(random_models.TINY)
    parts["vae"].save_pretrained(root / "vae")
    save_text_encoder(parts["text_encoder"], root / "text_encoder")
    parts["tokenizer"].save_pretrained(root / "tokenizer")
    return root


def save_text_encoder(model, folder: Path) -> None:
    """A CLIPTextModel as transformers 4 (Paints-UNDO's 4.41) saved it: keys "text_model.…"
    (transformers 5 has dropped that level from its own)."""
    folder.mkdir(parents=True)
    model.config.to_json_file(folder / "config.json")
    state = {k.removeprefix("text_model."): v.contiguous() for k, v in model.state_dict().items()}
    save_file({f"text_model.{k}": v for k, v in state.items()}, str(folder / "model.safetensors"))


def undo_weights(root: Path) -> Path:
    """A weights list naming a tiny single-frame release (device cpu); its path."""
    save_single_frame(root / "paints_undo_single_frame")
    config = root / "diffusion.json"
    config.write_text(
        json.dumps({"paints_undo_single_frame": "paints_undo_single_frame", "device": "cpu"})
    )
    return config

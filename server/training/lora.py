"""The LoRA a run trains: which layers it adapts, and the file the diffusion engine loads.

The file is what `StableDiffusionLoraLoaderMixin.load_lora_weights` reads (the engine's
`Video.use_lora`): peft's `lora_A`/`lora_B` tensors under `unet.` (and `controlnet.` for the
control net's layers, which the engine loads itself), with each part's LoraConfig in the
safetensors header (`lora_adapter_metadata`), so that rank and alpha come back as trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from paintstep.wire.errors import PaintError
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

ADAPTER = "default"
ATTENTION = r"transformer_blocks\.\d+\.attn\d\.(to_q|to_k|to_v|to_out\.0)"
# In diffusers' UNetMotionModel the motion modules' temporal attention is
# `*.motion_modules.N.transformer_blocks.N.attn1|attn2`, the spatial one `*.attentions.N...`.
UNET_TARGETS = {
    "motion": rf".*\.motion_modules\.\d+\.{ATTENTION}",
    "unet": rf".*\.attentions\.\d+\.{ATTENTION}",
}
CONTROLNET_TARGETS = rf".*\.{ATTENTION}"  # the control net's spatial and temporal attention
METADATA = "lora_adapter_metadata"  # diffusers' LORA_ADAPTER_METADATA_KEY


def lora_config(pattern: str, rank: int, alpha: float) -> LoraConfig:
    # Gaussian A and zero B (ProcessPainter's init): the untrained LoRA changes nothing.
    return LoraConfig(
        r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=pattern
    )


def add_lora(pipe, parts: tuple[str, ...], rank: int, alpha: float) -> dict[str, torch.nn.Module]:
    """Freeze the pipeline's models and wrap the layers `parts` name with a LoRA; the models
    that have one, by prefix ("unet", "controlnet")."""
    for model in (pipe.unet, pipe.controlnet, pipe.vae, pipe.text_encoder):
        model.requires_grad_(False)
    adapted = {}
    patterns = [UNET_TARGETS[part] for part in parts if part in UNET_TARGETS]
    if patterns:
        pattern = "|".join(f"(?:{p})" for p in patterns)
        pipe.unet.add_adapter(lora_config(pattern, rank, alpha), adapter_name=ADAPTER)
        adapted["unet"] = pipe.unet
    if "controlnet" in parts:
        inject_adapter_in_model(
            lora_config(CONTROLNET_TARGETS, rank, alpha), pipe.controlnet, ADAPTER
        )
        adapted["controlnet"] = pipe.controlnet
    for model in adapted.values():
        for name, parameter in model.named_parameters():
            parameter.requires_grad_("lora_" in name)
    return adapted


def trainable(models: dict[str, torch.nn.Module]) -> list[torch.nn.Parameter]:
    return [p for model in models.values() for p in model.parameters() if p.requires_grad]


def save_lora(path: Path, models: dict[str, torch.nn.Module]) -> Path:
    """Write the LoRA of `models` (by prefix) to `path` in the format the engine loads."""
    tensors, metadata = {}, {}
    for prefix, model in models.items():
        state = get_peft_model_state_dict(model, adapter_name=ADAPTER)
        for key, value in state.items():
            tensors[f"{prefix}.{key}"] = value.detach().to("cpu", torch.float32).contiguous()
        config = model.peft_config[ADAPTER].to_dict()
        metadata.update({f"{prefix}.{key}": value for key, value in config.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    header = {"format": "pt", METADATA: json.dumps(metadata, sort_keys=True, default=list)}
    save_file(tensors, str(partial), metadata=header)
    partial.replace(path)  # a reader (the engine, a resume) never sees half a file
    return path


def load_lora(path: Path, models: dict[str, torch.nn.Module]) -> None:
    """Set the LoRA weights of `models` (already wrapped, by prefix) from a file `save_lora`
    wrote: resuming a run."""
    with safe_open(str(path), "pt") as file:
        tensors = {key: file.get_tensor(key) for key in file.keys()}
    for prefix, model in models.items():
        state = {
            key.removeprefix(prefix + "."): value
            for key, value in tensors.items()
            if key.startswith(prefix + ".")
        }
        expected = get_peft_model_state_dict(model, adapter_name=ADAPTER)
        if set(state) != set(expected):
            raise PaintError(
                f"{path} does not hold the {prefix} LoRA this run trains (other layers or "
                "another --train); resume with the settings the run began with."
            )
        set_peft_model_state_dict(model, state, adapter_name=ADAPTER)

"""The sparse control net's part of a LoRA file (`controlnet.` keys), which diffusers' pipeline
loader leaves aside: `paintstep train-lora --train controlnet` writes it (torch; jobs only).

The keys are peft's (`controlnet.<layer>.lora_A.weight`, ...) and the LoraConfig is in the
file's header under `lora_adapter_metadata` as `controlnet.<field>`, as diffusers stores the
UNet's part.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PREFIX = "controlnet."
METADATA = "lora_adapter_metadata"


def split_keys(path: Path) -> tuple[bool, bool]:
    """Whether the file has parts for the pipeline's models (unet, text encoder), and whether
    it has one for the control net."""
    from safetensors import safe_open

    if path.is_dir() or path.suffix != ".safetensors":
        return True, False
    with safe_open(str(path), "pt") as file:
        keys = list(file.keys())
    control = [key.startswith(PREFIX) for key in keys]
    return not all(control), any(control)


def load_control_lora(controlnet: torch.nn.Module, path: Path, adapter: str) -> None:
    """Wrap the control net's layers that the file adapts with its LoRA, as `adapter`."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        state = {
            key.removeprefix(PREFIX): file.get_tensor(key)
            for key in file.keys()
            if key.startswith(PREFIX)
        }
        header = json.loads((file.metadata() or {}).get(METADATA, "{}"))
    fields = {k.removeprefix(PREFIX): v for k, v in header.items() if k.startswith(PREFIX)}
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in fields.items() if k in known})
    inject_adapter_in_model(config, controlnet, adapter)
    set_peft_model_state_dict(controlnet, state, adapter_name=adapter)


def use_control_lora(controlnet: torch.nn.Module, adapter: str | None, scale: float) -> None:
    """Apply `adapter` at `scale` to the control net's LoRA layers, or none (None)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in controlnet.modules():
        if isinstance(module, BaseTunerLayer):
            present = adapter is not None and adapter in module.lora_A
            module.enable_adapters(present)
            if present:
                module.set_adapter(adapter)
                module.set_scale(adapter, scale)

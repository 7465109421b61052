"""Motion modules and sparse control nets from their original single files into diffusers.

AnimateDiff's motion modules, SparseCtrl's control nets and ProcessPainter's releases (a motion
module with a peft LoRA on its temporal attention, and a control net it calls the Artwork
Replication Network) are PyTorch .ckpt files in the original AnimateDiff layout. Here their keys
are renamed to diffusers' MotionAdapter / SparseControlNetModel, the model's shape is read off
the tensors, and the weights are loaded strictly: a key missing or left over is an error that
names it, never a silently untrained layer.

ProcessPainter's code computes two things differently from diffusers, and its weights were
fine-tuned with them: its temporal attention applies the output projection twice (the
attention processor already applies it, then the module again), and its temporal GroupNorm
normalises each frame on its own (as the original AnimateDiff code does) where diffusers
normalises across frames. `processpainter=True` folds the double projection into one layer and
makes those norms work frame by frame. Plain AnimateDiff / SparseCtrl files are converted as
diffusers converts them, so that a file and its diffusers folder behave the same.
Checkpoints are read with `weights_only` (nothing in them is executed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from paintstep.process import PaintError

RENAMES = (
    (".norms.0", ".norm1"),
    (".norms.1", ".norm2"),
    (".ff_norm", ".norm3"),
    (".attention_blocks.0", ".attn1"),
    (".attention_blocks.1", ".attn2"),
    (".temporal_transformer", ""),
)
MARKER = "paintstep.json"  # written beside converted ProcessPainter weights
# ProcessPainter's adapter_config.json: r 4, lora_alpha 0.6
PROCESSPAINTER_LORA_SCALE = 0.6 / 4
# Not readable off the tensors' shapes: SD1.5's values, which every AnimateDiff model shares.
HEADS = 8
GROUPS = 32


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors or .ckpt/.pt/.bin file, unwrapped from the containers
    training scripts save them in ("state_dict", "controlnet", "module." prefixes)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "controlnet", "module"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ValueError("the file holds no weights (no mapping of names to tensors)")
    tensors = {
        re.sub(r"^(module\.|model\.)", "", key): value
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }
    if not tensors:
        raise ValueError("the file holds no tensors")
    return tensors


def has_lora(state: dict[str, torch.Tensor]) -> bool:
    return any(".base_layer." in key for key in state)


def merge_lora(state: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """peft's wrapped layers (base_layer + lora_A/lora_B) merged into plain weights:
    W = W0 + scale * B A."""
    merged: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        merged[key.replace(".base_layer.", ".")] = value
    for key, down in state.items():
        found = re.match(r"(.*)\.lora_A\.([^.]+)\.weight$", key)
        if not found:
            continue
        layer, adapter = found.groups()
        up = state.get(f"{layer}.lora_B.{adapter}.weight")
        if up is None:
            raise KeyError(f"{layer}.lora_B.{adapter}.weight (the LoRA's other half)")
        target = f"{layer}.weight"
        if target not in merged:
            raise KeyError(f"{layer}.base_layer.weight (the layer the LoRA adapts)")
        delta = (up.float() @ down.float()) * scale
        merged[target] = (merged[target].float() + delta).to(merged[target].dtype)
    return merged


def renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original AnimateDiff names to diffusers', positional encodings dropped (diffusers
    computes the same sines itself)."""
    out = {}
    for key, value in state.items():
        if "pos_encoder" in key or "pos_embed" in key:
            continue
        for old, new in RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def fold_double_output(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The temporal attention's output projection applied twice, as one: y = W(Wx + b) + b
    is W'x + b' with W' = W W and b' = W b + b."""
    out = dict(state)
    for key in state:
        if ".motion_modules." in key and key.endswith(".to_out.0.weight"):
            weight = state[key].double()
            bias = state[key[: -len("weight")] + "bias"].double()
            out[key] = (weight @ weight).to(state[key].dtype)
            out[key[: -len("weight")] + "bias"] = (weight @ bias + bias).to(state[key].dtype)
    return out


class FrameGroupNorm(torch.nn.GroupNorm):
    """GroupNorm over each frame of a (batch, channels, frames, h, w) tensor on its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        frames = F.group_norm(frames, self.num_groups, self.weight, self.bias, self.eps)
        return frames.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def normalise_frames_apart(model: torch.nn.Module) -> torch.nn.Module:
    """Make every temporal transformer's input norm work frame by frame (in place)."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    for module in model.modules():
        if isinstance(module, AnimateDiffTransformer3D):
            module.norm.__class__ = FrameGroupNorm
    return model


def load_strictly(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load every weight, or say which keys are missing and which are left over."""
    expected = {k for k in model.state_dict() if not k.endswith(".pe")}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise KeyError(f"{what}: keys {'; '.join(parts)}")
    for key, value in state.items():
        if model.state_dict()[key].shape != value.shape:
            raise KeyError(f"{what}: {key} has shape {tuple(value.shape)}, expected another")
    model.load_state_dict(state, strict=False)


def count_indices(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def motion_shape(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """MotionAdapter's config read off the tensors' names and shapes."""
    blocks = count_indices(state, r"down_blocks\.(\d+)\.motion_modules\.")
    if blocks == 0:
        raise KeyError("no down_blocks.N.motion_modules: this is not a motion module")
    channels = tuple(
        int(state[f"down_blocks.{i}.motion_modules.0.proj_in.weight"].shape[0])
        for i in range(blocks)
    )
    layers = count_indices(state, r"down_blocks\.0\.motion_modules\.(\d+)\.")
    return dict(
        block_out_channels=channels,
        motion_layers_per_block=layers,
        motion_num_attention_heads=HEADS,
        motion_norm_num_groups=GROUPS,
        motion_max_seq_length=32,
        use_motion_mid_block=any(k.startswith("mid_block.motion_modules") for k in state),
    )


def motion_adapter(state: dict[str, torch.Tensor], processpainter: bool | None = None):
    """A diffusers MotionAdapter from an original-layout motion module's tensors.
    `processpainter` None: decided by whether the file carries ProcessPainter's LoRA."""
    from diffusers import MotionAdapter

    if processpainter is None:
        processpainter = has_lora(state)
    state = {k: v for k, v in state.items() if "motion_modules." in k}
    if has_lora(state):
        state = merge_lora(state, PROCESSPAINTER_LORA_SCALE)
    state = renamed(state)
    if processpainter:
        state = fold_double_output(state)
    adapter = MotionAdapter(**motion_shape(state))
    load_strictly(adapter, state, "the motion module")
    return normalise_frames_apart(adapter) if processpainter else adapter


def control_shape(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """SparseControlNetModel's config read off the tensors' names and shapes."""
    blocks = count_indices(state, r"down_blocks\.(\d+)\.")
    if blocks == 0 or "controlnet_mid_block.weight" not in state:
        raise KeyError("no down_blocks / controlnet_mid_block: this is not a sparse control net")
    channels = tuple(
        int(state[f"down_blocks.{i}.resnets.0.conv1.weight"].shape[0]) for i in range(blocks)
    )
    embedding = (
        state["controlnet_cond_embedding.weight"]
        if ("controlnet_cond_embedding.weight" in state)
        else state["controlnet_cond_embedding.conv_in.weight"]
    )
    simplified = "controlnet_cond_embedding.weight" in state
    attention = [
        i for i in range(blocks) if f"down_blocks.{i}.attentions.0.proj_in.weight" in state
    ]
    cross = state["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"]
    config: dict[str, Any] = dict(
        block_out_channels=channels,
        layers_per_block=count_indices(state, r"down_blocks\.0\.resnets\.(\d+)\."),
        down_block_types=tuple(
            "CrossAttnDownBlockMotion" if i in attention else "DownBlockMotion"
            for i in range(blocks)
        ),
        cross_attention_dim=int(cross.shape[1]),
        norm_num_groups=GROUPS,
        attention_head_dim=HEADS,
        motion_num_attention_heads=HEADS,
        motion_max_seq_length=32,
        use_simplified_condition_embedding=simplified,
        concat_conditioning_mask=True,
        conditioning_channels=int(embedding.shape[1]) - 1,
    )
    if not simplified:
        odd = count_indices(state, r"controlnet_cond_embedding\.blocks\.(\d+)\.") // 2
        config["conditioning_embedding_out_channels"] = (int(embedding.shape[0]),) + tuple(
            int(state[f"controlnet_cond_embedding.blocks.{2 * i + 1}.weight"].shape[0])
            for i in range(odd)
        )
    return config


def control_net(state: dict[str, torch.Tensor], processpainter: bool = False):
    """A diffusers SparseControlNetModel from an original-layout sparse control net."""
    from diffusers import SparseControlNetModel

    state = renamed(merge_lora(state, PROCESSPAINTER_LORA_SCALE) if has_lora(state) else state)
    if processpainter:
        state = fold_double_output(state)
    model = SparseControlNetModel(**control_shape(state))
    load_strictly(model, state, "the sparse control net")
    return normalise_frames_apart(model) if processpainter else model


def load_folder(model_class, folder: Path, dtype: torch.dtype):
    """A diffusers folder, with ProcessPainter's frame-wise norms where `convert` marked it."""
    model = model_class.from_pretrained(folder, dtype=dtype, local_files_only=True)
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("frame_norm"):
        normalise_frames_apart(model)
    return model


def convert_file(source: Path, out: Path, kind: str, processpainter: bool) -> Path:
    """`paintstep convert`: an original-layout file saved as a diffusers folder."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / MARKER).exists())):
        raise PaintError(
            f"{out} exists and is not an earlier conversion; give a new folder to write into."
        )
    try:
        state = read_checkpoint(source)
        if kind == "motion":
            model = motion_adapter(state, processpainter or None)
            processpainter = processpainter or has_lora(state)
        else:
            model = control_net(state, processpainter)
    except Exception as error:  # torch, pickle and safetensors each raise their own kinds
        raise PaintError(
            f"Could not convert {source}: {str(error).splitlines()[0][:300]}. Give a motion "
            "module or control net checkpoint (.ckpt, .safetensors) in the original layout."
        ) from None
    model.save_pretrained(out)
    (out / MARKER).write_text(json.dumps({"frame_norm": processpainter, "source": source.name}))
    return out


def domain_adapter(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """AnimateDiff's domain adapter (v3_sd15_adapter.ckpt) as {layer: (up, down)}: LoRA pairs
    saved under diffusers' old attention-processor names (`...attn1.processor.to_q_lora.down.
    weight`), read as ProcessPainter's load_diffusers_lora reads them."""
    pairs = {}
    for key, down in state.items():
        if not key.endswith(".down.weight") or "_lora." not in key:
            continue
        up = state.get(key[: -len(".down.weight")] + ".up.weight")
        if up is None:
            raise KeyError(f"{key[: -len('.down.weight')]}.up.weight (the LoRA's other half)")
        layer = key[: -len(".down.weight")].replace("processor.", "").replace("_lora", "")
        layer = layer.removeprefix("unet.")
        pairs[re.sub(r"\.to_out$", ".to_out.0", layer)] = (up, down)
    if not pairs:
        raise KeyError("no ...processor.to_q_lora.down.weight: this is not a domain adapter")
    return pairs


def merge_domain_adapter(unet: torch.nn.Module, state: dict[str, torch.Tensor], scale: float):
    """W += scale * up @ down on each layer the adapter names (in place); a layer the UNet
    lacks is an error that names it."""
    layers = dict(unet.named_modules())
    with torch.no_grad():
        for name, (up, down) in domain_adapter(state).items():
            layer = layers.get(name)
            if layer is None or not hasattr(layer, "weight"):
                raise KeyError(f"{name}: the domain adapter adapts a layer SD1.5 does not have")
            delta = (up.float() @ down.float()) * scale
            layer.weight += delta.to(layer.weight.device, layer.weight.dtype)
    return unet

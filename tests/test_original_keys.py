"""Motion modules written under the key names and shapes AnimateDiff and ProcessPainter save.

The names and shapes below are read off ProcessPainter's animatediff/models/motion_module.py
(AnimateDiff's own, which it keeps): VanillaTemporalModule > temporal_transformer (norm,
proj_in, transformer_blocks, proj_out) > TemporalTransformerBlock (attention_blocks, norms,
ff, ff_norm) > VersatileAttention (to_q, to_k, to_v without bias, to_out.0, pos_encoder.pe).
Nothing here is derived from the converter's rename table: the file is made from the fixed
list, and what the converted module computes is compared with that code's forward written out
on the file's own tensors, so a swapped pair (attn1/attn2, norm1/norm2) fails.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from paintstep.model import convert  # noqa: E402

F = torch.nn.functional
HEADS = 8
FRAMES = 8
CHANNELS = (32, 64)  # random_models.TINY's, one layer per block


def module_keys(
    prefix: str, c: int, max_len: int, attentions: int = 2
) -> dict[str, tuple[int, ...]]:
    """One VanillaTemporalModule's state_dict: names and shapes (`attentions`: 2 in a motion
    module, [Temporal_Self, Temporal_Self]; 1 in SparseCtrl's control net)."""
    t = f"{prefix}.temporal_transformer"
    block = f"{t}.transformer_blocks.0"
    keys = {
        f"{t}.norm.weight": (c,),
        f"{t}.norm.bias": (c,),
        f"{t}.proj_in.weight": (c, c),
        f"{t}.proj_in.bias": (c,),
        f"{t}.proj_out.weight": (c, c),
        f"{t}.proj_out.bias": (c,),
        f"{block}.ff.net.0.proj.weight": (8 * c, c),  # GEGLU: 2 x (4 x dim)
        f"{block}.ff.net.0.proj.bias": (8 * c,),
        f"{block}.ff.net.2.weight": (c, 4 * c),
        f"{block}.ff.net.2.bias": (c,),
        f"{block}.ff_norm.weight": (c,),
        f"{block}.ff_norm.bias": (c,),
    }
    for i in range(attentions):  # attention_block_types
        attention = f"{block}.attention_blocks.{i}"
        for projection in ("to_q", "to_k", "to_v"):
            keys[f"{attention}.{projection}.weight"] = (c, c)
        keys[f"{attention}.to_out.0.weight"] = (c, c)
        keys[f"{attention}.to_out.0.bias"] = (c,)
        keys[f"{attention}.pos_encoder.pe"] = (1, max_len, c)
        keys[f"{block}.norms.{i}.weight"] = (c,)
        keys[f"{block}.norms.{i}.bias"] = (c,)
    return keys


def motion_file_keys(max_len: int) -> dict[str, tuple[int, ...]]:
    """A whole motion module file for a UNet of CHANNELS (down: 1 module a block, up: 2)."""
    keys = {}
    for i, c in enumerate(CHANNELS):
        keys |= module_keys(f"down_blocks.{i}.motion_modules.0", c, max_len)
    for i, c in enumerate(reversed(CHANNELS)):
        for j in (0, 1):
            keys |= module_keys(f"up_blocks.{i}.motion_modules.{j}", c, max_len)
    return keys


def sinusoids(max_len: int, c: int) -> torch.Tensor:
    """PositionalEncoding.pe as the file holds it."""
    position = torch.arange(max_len).unsqueeze(1)
    div = torch.exp(torch.arange(0, c, 2) * (-math.log(10000.0) / c))
    pe = torch.zeros(1, max_len, c)
    pe[0, :, 0::2] = torch.sin(position * div)
    pe[0, :, 1::2] = torch.cos(position * div)
    return pe


def filled(keys: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys.items():
        if key.endswith(".pe"):
            state[key] = sinusoids(shape[1], shape[2])
        elif "norm" in key.rsplit(".", 2)[-2] or ".norms." in key:
            base = 1.0 if key.endswith("weight") else 0.0
            state[key] = base + 0.2 * torch.randn(shape, generator=generator)
        else:
            scale = 1 / math.sqrt(shape[-1]) if len(shape) == 2 else 0.1
            state[key] = torch.randn(shape, generator=generator) * scale
    return state


def with_processpainter_lora(state: dict[str, torch.Tensor], seed: int) -> dict:
    """As ProcessPainter saves Motion_with_LoRA/*.ckpt: peft's LoRA (r 4) on to_q, to_k, to_v
    and to_out.0 of every temporal attention (its adapter_config.json's target_modules)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        layer, _, leaf = key.rpartition(".")
        if ".attention_blocks." in key and layer.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            out[f"{layer}.base_layer.{leaf}"] = value
            if leaf == "weight":
                out[f"{layer}.lora_A.default.weight"] = torch.randn(
                    4, value.shape[1], generator=generator
                )
                out[f"{layer}.lora_B.default.weight"] = 0.3 * torch.randn(
                    value.shape[0], 4, generator=generator
                )
        else:
            out[key] = value
    return out


def lora_weight(state: dict, layer: str) -> torch.Tensor:
    """W0 + (alpha / r) B A with ProcessPainter's r 4, alpha 0.6."""
    if f"{layer}.weight" in state:
        return state[f"{layer}.weight"]
    up, down = state[f"{layer}.lora_B.default.weight"], state[f"{layer}.lora_A.default.weight"]
    return state[f"{layer}.base_layer.weight"] + 0.6 / 4 * up @ down


def bias(state: dict, layer: str) -> torch.Tensor:
    return state.get(f"{layer}.bias", state.get(f"{layer}.base_layer.bias"))


def original_forward(state, prefix, x, frames, frame_norm: bool, twice: bool) -> torch.Tensor:
    """VanillaTemporalModule.forward on (batch frames, c, h, w), from the file's tensors.
    `frame_norm`: GroupNorm on each frame (its code) or across them (diffusers'); `twice`: the
    output projection applied by the processor and again by VersatileAttention.forward."""
    t = f"{prefix}.temporal_transformer"
    block = f"{t}.transformer_blocks.0"
    bf, c, h, w = x.shape
    b = bf // frames
    norm = (state[f"{t}.norm.weight"], state[f"{t}.norm.bias"])
    if frame_norm:
        hs = F.group_norm(x, 32, *norm, eps=1e-6)
    else:
        video = x.reshape(b, frames, c, h, w).transpose(1, 2)
        hs = F.group_norm(video, 32, *norm, eps=1e-6).transpose(1, 2).reshape(x.shape)
    hs = hs.permute(0, 2, 3, 1).reshape(bf, h * w, c)
    hs = F.linear(hs, state[f"{t}.proj_in.weight"], state[f"{t}.proj_in.bias"])
    here = f"{block}.attention_blocks."
    attentions = {k[len(here) :].split(".")[0] for k in state if k.startswith(here)}
    for i in sorted(attentions):
        a = f"{block}.attention_blocks.{i}"
        normed = F.layer_norm(
            hs, (c,), state[f"{block}.norms.{i}.weight"], state[f"{block}.norms.{i}.bias"]
        )
        seq = normed.reshape(b, frames, h * w, c).transpose(1, 2).reshape(b * h * w, frames, c)
        seq = seq + state[f"{a}.pos_encoder.pe"][:, :frames]
        q, k, v = (F.linear(seq, lora_weight(state, f"{a}.{p}")) for p in ("to_q", "to_k", "to_v"))
        split = [z.reshape(b * h * w, frames, HEADS, c // HEADS).transpose(1, 2) for z in (q, k, v)]
        out = F.scaled_dot_product_attention(*split).transpose(1, 2).reshape(-1, frames, c)
        for _ in range(2 if twice else 1):
            out = F.linear(out, lora_weight(state, f"{a}.to_out.0"), bias(state, f"{a}.to_out.0"))
        out = out.reshape(b, h * w, frames, c).transpose(1, 2).reshape(bf, h * w, c)
        hs = out + hs
    normed = F.layer_norm(
        hs, (c,), state[f"{block}.ff_norm.weight"], state[f"{block}.ff_norm.bias"]
    )
    proj, gate = F.linear(
        normed, state[f"{block}.ff.net.0.proj.weight"], state[f"{block}.ff.net.0.proj.bias"]
    ).chunk(2, dim=-1)
    ff = F.linear(proj * F.gelu(gate), state[f"{block}.ff.net.2.weight"])
    hs = ff + state[f"{block}.ff.net.2.bias"] + hs
    hs = F.linear(hs, state[f"{t}.proj_out.weight"], state[f"{t}.proj_out.bias"])
    return hs.reshape(bf, h, w, c).permute(0, 3, 1, 2) + x


def modules_of(keys) -> list[str]:
    return sorted({key.split(".temporal_transformer.")[0] for key in keys})


def compare(model, state, frame_norm: bool, twice: bool) -> int:
    compared = 0
    generator = torch.Generator().manual_seed(11)
    for prefix in modules_of(state):
        module = model.get_submodule(prefix)
        c = module.proj_in.in_features
        x = torch.randn(2 * FRAMES, c, 4, 4, generator=generator)
        x += torch.linspace(-1, 1, FRAMES).repeat(2)[:, None, None, None]
        with torch.no_grad():
            got = module(x, num_frames=FRAMES)
            expected = original_forward(state, prefix, x, FRAMES, frame_norm, twice)
        assert float((got - expected).norm() / expected.norm()) < 1e-5, prefix
        compared += 1
    return compared


def test_an_animatediff_v3_motion_module_computes_what_its_code_computes():
    """mm_sd15_v3 as released (positions up to 32), converted as diffusers converts it."""
    keys = motion_file_keys(max_len=32)
    state = filled(keys, seed=1)
    adapter = convert.motion_adapter(dict(state))
    assert compare(adapter, state, frame_norm=False, twice=False) == 6


def test_a_processpainter_motion_module_in_the_pipelines_unet_computes_what_its_code_does():
    """Motion_with_LoRA/*.ckpt (positions up to 24, its inference.yaml), converted and then
    built into the pipeline's motion UNet as the engine builds it."""
    from diffusers import UNetMotionModel
    from paintstep.model import processpainter, random_models

    keys = motion_file_keys(max_len=24)
    state = with_processpainter_lora(filled(keys, seed=2), seed=3)
    adapter = convert.motion_adapter(dict(state))  # recognised by its LoRA
    unet = UNetMotionModel.from_unet2d(random_models.unet(random_models.TINY), adapter)
    processpainter.as_processpainter(unet)
    assert compare(unet, state, frame_norm=True, twice=True) == 6


def control_file(seed: int) -> dict[str, torch.Tensor]:
    """A SparseCtrl-RGB control net as released: its motion modules under the original names
    (one temporal self-attention each, positions up to 32: image_condition.yaml), the rest
    under the names SparseCtrl's UNet3D blocks share with diffusers."""
    from paintstep.model import random_models

    net = random_models.control_net(random_models.TINY)
    state = {k: v for k, v in net.state_dict().items() if ".motion_modules." not in k}
    for i, c in enumerate(CHANNELS):
        state |= filled(module_keys(f"down_blocks.{i}.motion_modules.0", c, 32, 1), seed + i)
    return state


@pytest.mark.parametrize("processpainter", [False, True], ids=["sparsectrl", "processpainter"])
def test_a_control_nets_motion_modules_compute_what_its_code_computes(processpainter):
    state = control_file(seed=4)
    net = convert.control_net(dict(state), processpainter)
    motion = {k: v for k, v in state.items() if ".temporal_transformer." in k}
    frame_norm = twice = processpainter
    assert compare(net, motion, frame_norm, twice) == len(CHANNELS)

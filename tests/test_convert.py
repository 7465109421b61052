"""Original-layout checkpoints (AnimateDiff, SparseCtrl, ProcessPainter) into diffusers.

The files are written here the way those projects write them: a motion module's or control
net's tensors under the original AnimateDiff names, in a torch .ckpt, ProcessPainter's with the
peft LoRA on its temporal attention. The converter must load every key (and name any it cannot)
and, for ProcessPainter, compute what ProcessPainter's own modules compute.
"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from paintstep.model import convert, random_models  # noqa: E402

ORIGINAL = tuple((new, old) for old, new in convert.RENAMES if new)


def original_name(key: str) -> str:
    """A diffusers motion-module key as AnimateDiff's original code names it."""
    key = key.replace(".motion_modules.", "\0").replace("\0", ".motion_modules.")
    head, sep, tail = key.partition(".motion_modules.")
    if not sep:
        return key
    number, _, rest = tail.partition(".")
    for new, old in ORIGINAL:
        rest = ("." + rest).replace(new, old)[1:]
    return f"{head}.motion_modules.{number}.temporal_transformer.{rest}"


def original_state(model, with_pe: bool = True) -> dict:
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("pos_embed.pe"):
            if with_pe:
                name = original_name(key).replace("pos_embed.pe", "pos_encoder.pe")
                state[
                    name.replace(".transformer_blocks.0.pos", ".transformer_blocks.0.attn1.pos")
                ] = value
            continue
        state[original_name(key)] = value.clone()
    return state


@pytest.fixture(scope="module")
def parts():
    return random_models.build(random_models.TINY, seed=4)


def test_original_names_are_what_animatediff_writes(parts):
    names = original_state(parts["motion_adapter"])
    assert "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight" in names
    assert (
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0."
        "attention_blocks.0.to_q.weight" in names
    )
    assert any(".norms.0." in k for k in names) and any(".ff_norm." in k for k in names)


def test_an_animatediff_motion_module_file_loads_every_weight(parts, tmp_path):
    adapter = parts["motion_adapter"]
    path = tmp_path / "mm_sd_v15.ckpt"
    torch.save({"state_dict": original_state(adapter)}, path)
    converted = convert.motion_adapter(convert.read_checkpoint(path))
    for key, value in adapter.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


def test_a_sparsectrl_file_loads_every_weight(parts, tmp_path):
    net = parts["controlnet"]
    path = tmp_path / "v3_sd15_sparsectrl_rgb.ckpt"
    torch.save({"controlnet": original_state(net)}, path)
    converted = convert.control_net(convert.read_checkpoint(path))
    assert converted.config.conditioning_channels == net.config.conditioning_channels
    for key, value in net.state_dict().items():
        assert torch.equal(converted.state_dict()[key], value), key


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_a_missing_or_unexpected_key_is_an_error_that_names_it(parts, change):
    state = original_state(parts["motion_adapter"])
    victim = "up_blocks.1.motion_modules.0.temporal_transformer.proj_out.weight"
    if change == "missing":
        del state[victim]
        expected = victim.replace(".temporal_transformer", "")
    else:
        state["down_blocks.0.motion_modules.0.temporal_transformer.extra.weight"] = torch.ones(1)
        expected = "down_blocks.0.motion_modules.0.extra.weight"
    with pytest.raises(KeyError, match=f"{change}.*{expected}"):
        convert.motion_adapter(state)


def processpainter_file(adapter, generator) -> dict:
    """The motion module as ProcessPainter saves it: its named_parameters (no positional
    encoding), with peft's LoRA (r 4, alpha 0.6) on every temporal attention projection."""
    state = {}
    for key, value in original_state(adapter, with_pe=False).items():
        found = any(f".{p}.weight" in key or f".{p}.bias" in key for p in convert_targets())
        if found and ".attention_blocks." in key:
            layer, _, leaf = key.rpartition(".")
            state[f"{layer}.base_layer.{leaf}"] = value
            if leaf == "weight":
                rank = 4
                state[f"{layer}.lora_A.default.weight"] = torch.randn(
                    rank, value.shape[1], generator=generator
                )
                state[f"{layer}.lora_B.default.weight"] = torch.randn(
                    value.shape[0], rank, generator=generator
                )
        else:
            state[key] = value
    return state


def convert_targets():
    return ("to_q", "to_k", "to_v", "to_out.0")


class Twice(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(self.layer(x))


def processpainter_reference(adapter, state):
    """What ProcessPainter's modules compute, built independently of the converter: the
    LoRA added through peft's own layers, the output projection run twice, and GroupNorm
    applied to each frame alone."""
    from peft import LoraConfig, inject_adapter_in_model

    model = copy.deepcopy(adapter)
    config = LoraConfig(r=4, lora_alpha=0.6, target_modules=list(convert_targets()))
    inject_adapter_in_model(config, model)
    with torch.no_grad():
        own = model.state_dict()
        for key, value in state.items():
            if ".lora_" not in key:
                continue
            name = key.replace(".temporal_transformer", "")
            for new, old in ORIGINAL:
                name = name.replace(old, new)
            own[name].copy_(value)
        model.load_state_dict(own)
    for module in model.modules():
        if module.__class__.__name__ == "AnimateDiffTransformer3D":
            for block in module.transformer_blocks:
                for attention in (block.attn1, block.attn2):
                    if attention is not None:
                        attention.to_out[0] = Twice(attention.to_out[0])
            norm = module.norm

            def frame_norm(x, norm=norm):
                b, c, f, h, w = x.shape
                flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
                out = torch.nn.functional.group_norm(
                    flat, norm.num_groups, norm.weight, norm.bias, norm.eps
                )
                return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

            norm.forward = frame_norm
    return model


def test_a_processpainter_motion_module_computes_what_processpainter_computes(parts, tmp_path):
    adapter = parts["motion_adapter"]
    state = processpainter_file(adapter, torch.Generator().manual_seed(2))
    path = tmp_path / "speedpainting.ckpt"
    torch.save(state, path)
    converted = convert.motion_adapter(convert.read_checkpoint(path))  # recognised by its LoRA
    reference = processpainter_reference(adapter, state)
    plain = convert.motion_adapter(convert.read_checkpoint(path), processpainter=False)

    frames, channels = 8, adapter.config.block_out_channels[0]
    x = torch.randn(frames, channels, 4, 4, generator=torch.Generator().manual_seed(3))

    def run(model):
        module = model.down_blocks[0].motion_modules[0]
        with torch.no_grad():
            return module(x, num_frames=frames)

    expected = run(reference)
    assert torch.allclose(run(converted), expected, atol=1e-4)
    assert not torch.allclose(run(plain), expected, atol=1e-2)  # the quirks matter


def test_converted_processpainter_weights_keep_their_frame_norms_in_a_folder(parts, tmp_path):
    adapter = parts["motion_adapter"]
    path = tmp_path / "character.ckpt"
    torch.save(processpainter_file(adapter, torch.Generator().manual_seed(2)), path)
    out = convert.convert_file(path, tmp_path / "character", "motion", processpainter=False)
    from diffusers import MotionAdapter

    loaded = convert.load_folder(MotionAdapter, out, torch.float32)
    direct = convert.motion_adapter(convert.read_checkpoint(path))
    x = torch.randn(8, adapter.config.block_out_channels[0], 4, 4)
    with torch.no_grad():
        a = loaded.down_blocks[0].motion_modules[0](x, num_frames=8)
        b = direct.down_blocks[0].motion_modules[0](x, num_frames=8)
    assert torch.allclose(a, b)


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    path = tmp_path / "notes.ckpt"
    torch.save({"epoch": 3}, path)
    with pytest.raises(ValueError, match="no tensors"):
        convert.read_checkpoint(path)


def test_the_convert_command_writes_a_folder_the_engine_loads(parts, tmp_path, capsys):
    from diffusers import SparseControlNetModel
    from paintstep.cli import main

    path = tmp_path / "referencenet.ckpt"
    torch.save(original_state(parts["controlnet"]), path)
    assert main(["convert", "control", str(path), str(tmp_path / "ctrl")]) == 0
    assert "ctrl" in capsys.readouterr().out
    loaded = convert.load_folder(SparseControlNetModel, tmp_path / "ctrl", torch.float32)
    for key, value in parts["controlnet"].state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    broken = dict(original_state(parts["controlnet"]))
    broken.pop("controlnet_mid_block.weight")
    torch.save(broken, path)
    assert main(["convert", "control", str(path), str(tmp_path / "bad")]) != 0
    assert "Could not convert" in capsys.readouterr().err

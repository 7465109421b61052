"""SD1.5 as one .safetensors/.ckpt file in the original (LDM / CompVis) layout, as users' fine-tunes
come, with a diffusers folder that holds its configs: the engine loads it offline, to exactly the
weights that were written, and paints what the same weights paint from a diffusers folder.

The files are written from the tiny random models by `ldm_layout.to_ldm`; the folder that
`base_config` names holds configs and tokenizer only, so every weight loaded comes from the file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import photo

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from ldm_layout import to_ldm  # noqa: E402
from paintstep.engines import get_engine  # noqa: E402
from paintstep.model import random_models  # noqa: E402
from paintstep.model.video import load_base  # noqa: E402
from paintstep.model.weights import Weights  # noqa: E402
from paintstep.process import PaintRequest, frames  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

FAST = {"size": 32, "frames": 8, "sampling_steps": 3}
MODELS = ("unet", "vae", "text_encoder")
# SD1.5's layout (4 blocks of 2 layers, VAE blocks of 2, widths doubling as its do) but narrow.
SD15_LAYOUT = dataclasses.replace(
    random_models.FULL,
    channels=(32, 64, 128, 128),
    text_width=32,
    text_layers=2,
    vae_channels=(8, 16, 32, 32),
    vae_groups=4,
    embedding_channels=random_models.TINY.embedding_channels,
)


def saved(root, size=random_models.TINY):
    """Parts built at `size`, saved as a diffusers folder `root/sd15`, with `root/configs` a
    copy of it without the weights; the parts."""
    parts = random_models.build(size)
    random_models.save_base(parts, root / "sd15")
    ignore = shutil.ignore_patterns("*.safetensors", "*.bin")
    shutil.copytree(root / "sd15", root / "configs", ignore=ignore)
    return parts


def write_ldm(parts, file) -> None:
    state = to_ldm(*(parts[name] for name in MODELS))
    if file.suffix == ".safetensors":
        save_file(state, file)
    else:
        torch.save({"state_dict": state}, file)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("single_file")
    return root, saved(root)


@pytest.mark.parametrize(
    "size, name",
    [
        (random_models.TINY, "sd15-tiny.safetensors"),
        (random_models.TINY, "sd15-tiny.ckpt"),
        (SD15_LAYOUT, "sd15-layout.safetensors"),
    ],
    ids=["tiny-safetensors", "tiny-ckpt", "sd15-layout-safetensors"],
)
def test_an_ldm_file_loads_to_exactly_the_weights_written(tmp_path, size, name):
    parts = saved(tmp_path, size)
    file = tmp_path / name
    write_ldm(parts, file)
    weights = Weights(
        config=tmp_path / "diffusion.json", base=file, base_config=tmp_path / "configs"
    )
    loaded = load_base(weights, torch.float32)
    for model in MODELS:
        expected, got = parts[model].state_dict(), loaded[model].state_dict()
        assert got.keys() == expected.keys(), model
        for key, tensor in expected.items():
            assert got[key].dtype == torch.float32 and torch.equal(got[key], tensor), key


def test_the_engine_paints_the_same_from_the_file_as_from_the_folder(tiny, monkeypatch):
    root, parts = tiny
    parts["motion_adapter"].save_pretrained(root / "motion")
    parts["controlnet"].save_pretrained(root / "control")
    write_ldm(parts, root / "sd15-tiny.safetensors")
    canvas = photo("coffee", 48)
    bases = {
        "folder": {"base": "sd15"},
        "file": {"base": "sd15-tiny.safetensors", "base_config": "configs"},
    }
    painted = {}
    for kind, base in bases.items():
        config = root / f"diffusion-{kind}.json"
        entries = {**base, "motion": "motion", "control": "control", "device": "cpu"}
        config.write_text(json.dumps(entries))
        monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(config))
        request = PaintRequest(canvas, steps=3, complete=True, options=FAST)
        layers = list(get_engine("diffusion").paint(request, None, None))
        assert [layer.index for layer in layers] == [1, 2, 3]
        *_, painted[kind] = frames(request.first_frame(), layers)
    assert np.abs(painted["file"].astype(int) - canvas).mean() > 5  # something was painted
    assert np.array_equal(painted["file"], painted["folder"])


def test_the_file_names_weights_as_sd15_checkpoints_do():
    """Names diffusers would also accept in other forms, checked against SD1.5's own: its
    UNet's 686 and VAE's 248 weights, the upsamplers after attention in .2, the VAE's
    nin_shortcut and its attention's 1x1 convs."""
    size = SD15_LAYOUT
    state = to_ldm(
        random_models.unet(size), random_models.vae(size), random_models.text_encoder(size)
    )
    assert sum(key.startswith("model.diffusion_model.") for key in state) == 686
    assert sum(key.startswith("first_stage_model.") for key in state) == 248
    unet, vae = "model.diffusion_model.", "first_stage_model."
    for key in [
        "input_blocks.3.0.op.weight",
        "input_blocks.4.0.skip_connection.weight",
        "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "output_blocks.8.2.conv.weight",
        "output_blocks.11.0.skip_connection.weight",
    ]:
        assert unet + key in state, key
    for key in [
        "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down.2.downsample.conv.weight",
        "decoder.up.0.block.2.conv2.weight",
        "decoder.up.0.block.0.nin_shortcut.weight",
        "decoder.up.3.upsample.conv.weight",
    ]:
        assert vae + key in state, key
    assert vae + "decoder.up.0.upsample.conv.weight" not in state
    assert state[vae + "encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)
    assert state[vae + "decoder.mid.attn_1.proj_out.weight"].shape == (32, 32, 1, 1)
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in state

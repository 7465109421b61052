"""The diffusion engine computes what ProcessPainter computes, on tiny models of random weights.

A tiny SD1.5 (with SD1.5's own scheduler config) and a motion module saved as ProcessPainter
saves its `Motion_with_LoRA/*.ckpt` are loaded by the engine as a user's weights are; then the
pipeline's motion UNet and its starting latents are compared with re-creations, written here
from ProcessPainter's code (animatediff/models/resnet.py, motion_module.py, ddim.py), of what
that code computes.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from conftest import photo

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from test_convert import processpainter_file, processpainter_reference  # noqa: E402

F = torch.nn.functional
FRAMES = 8
# stable-diffusion-v1-5's scheduler/scheduler_config.json, which ProcessPainter's ddim.py reads
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from paintstep.model import random_models

    root = tmp_path_factory.mktemp("processpainter")
    parts = random_models.build(random_models.TINY, seed=5)
    random_models.save_base(parts, root / "sd15")
    (root / "sd15" / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD15_SCHEDULER))
    state = processpainter_file(parts["motion_adapter"], torch.Generator().manual_seed(6))
    torch.save(state, root / "speedpainting.ckpt")
    parts["controlnet"].save_pretrained(root / "control")
    config = root / "diffusion.json"
    entries = {"base": "sd15", "motion": "speedpainting.ckpt", "control": "control"}
    config.write_text(json.dumps({**entries, "device": "cpu"}))
    return root, parts, state


@pytest.fixture(scope="module")
def model(saved):
    from paintstep.model import video
    from paintstep.model.weights import load_weights

    return video.Video.get(load_weights(saved[0] / "diffusion.json"), "fp32")


def test_the_pipelines_motion_modules_compute_what_processpainters_compute(saved, model):
    """Every temporal module of the UNet the pipeline built (not only the adapter loaded):
    the LoRA merged, the output projection twice, GroupNorm on each frame alone."""
    _, parts, state = saved
    reference = processpainter_reference(parts["motion_adapter"], state)
    generator = torch.Generator().manual_seed(7)
    compared = 0
    for name, expected_module in reference.named_modules():
        if not name.endswith(tuple(f"motion_modules.{i}" for i in range(4))):
            continue
        module = model.pipe.unet.get_submodule(name)
        channels = module.proj_in.in_features
        x = torch.randn(2 * FRAMES, channels, 4, 4, generator=generator)
        x += torch.linspace(-2, 2, FRAMES).repeat(2)[:, None, None, None]  # frames differ
        with torch.no_grad():
            got = module(x, num_frames=FRAMES)
            expected = expected_module(x, num_frames=FRAMES)
        assert close(got, expected), name
        compared += 1
    in_the_pipeline = [n for n, _ in model.pipe.unet.named_modules() if n.endswith("_modules.0")]
    assert compared >= len(in_the_pipeline) > 0


def close(got: torch.Tensor, expected: torch.Tensor, within: float = 1e-5) -> bool:
    """Equal to float32 rounding, relative to the tensor's size (these reach 100)."""
    return float((got - expected).norm() / expected.norm()) < within


def processpainter_resnet(block, frames: int):
    """ResnetBlock3D.forward of ProcessPainter's resnet.py with use_inflated_groupnorm False:
    convolutions per frame, torch's GroupNorm on the whole (b, c, f, h, w) video."""

    def norm(layer, v):
        return F.group_norm(v, layer.num_groups, layer.weight, layer.bias, layer.eps)

    def forward(input_tensor, temb, *args, **kwargs):
        bf = input_tensor.shape[0]

        def video(x):
            return x.reshape(bf // frames, frames, *x.shape[1:]).transpose(1, 2)

        def per_frame(layer, v):
            flat = v.transpose(1, 2).reshape(bf, *v.shape[1:2], *v.shape[3:])
            return video(layer(flat))

        x = video(input_tensor)
        h = per_frame(block.conv1, F.silu(norm(block.norm1, x)))
        emb = block.time_emb_proj(F.silu(temb[::frames]))  # one per sample, not per frame
        h = h + emb[:, :, None, None, None]
        h = per_frame(block.conv2, F.silu(norm(block.norm2, h)))
        if block.conv_shortcut is not None:
            x = per_frame(block.conv_shortcut, x)
        out = (x + h) / block.output_scale_factor
        return out.transpose(1, 2).reshape(bf, *out.shape[1:2], *out.shape[3:])

    return forward


def processpainter_unet(plain_unet, adapter, frames: int):
    """diffusers' motion UNet with ProcessPainter's computations written in: its ResNet blocks
    and last norm as above, its temporal norms per frame."""
    from diffusers import UNetMotionModel
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    unet = UNetMotionModel.from_unet2d(plain_unet, adapter)
    for module in unet.modules():
        if isinstance(module, ResnetBlock2D):
            module.forward = processpainter_resnet(module, frames)
        if isinstance(module, AnimateDiffTransformer3D):
            norm = module.norm

            def frame_norm(x, norm=norm):
                b, c, f, h, w = x.shape
                flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
                out = F.group_norm(flat, norm.num_groups, norm.weight, norm.bias, norm.eps)
                return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

            norm.forward = frame_norm
    last = unet.conv_norm_out

    def pooled_last(x):
        bf = x.shape[0]
        v = x.reshape(bf // frames, frames, *x.shape[1:]).transpose(1, 2)
        out = F.group_norm(v, last.num_groups, last.weight, last.bias, last.eps)
        return out.transpose(1, 2).reshape(x.shape)

    last.forward = pooled_last
    return unet


def test_the_pipelines_unet_pools_its_resnet_norms_over_the_frames(saved, model):
    """The whole motion UNet, on a video whose frames differ, against diffusers' blocks with
    ProcessPainter's ResNet blocks and norms written in: the same noise prediction."""
    from diffusers import UNet2DConditionModel, UNetMotionModel
    from paintstep.model import convert

    root, _, _ = saved
    plain = UNet2DConditionModel.from_pretrained(root / "sd15" / "unet")
    adapter = convert.motion_adapter(convert.read_checkpoint(root / "speedpainting.ckpt"))
    reference = processpainter_unet(plain, adapter, FRAMES)
    generator = torch.Generator().manual_seed(8)
    sample = torch.randn(2, 4, FRAMES, 8, 8, generator=generator)
    sample += torch.linspace(-1.5, 1.5, FRAMES)[None, None, :, None, None]
    text = torch.randn(2, 77, plain.config.cross_attention_dim, generator=generator)
    text = text.repeat_interleave(FRAMES, 0)  # the pipelines hand the UNet one per frame
    with torch.no_grad():
        got = model.pipe.unet(sample, 500, encoder_hidden_states=text).sample
        expected = reference(sample, 500, encoder_hidden_states=text).sample
        diffusers_own = UNetMotionModel.from_unet2d(plain, adapter)(
            sample, 500, encoder_hidden_states=text
        )
    assert close(got, expected, 1e-4)  # rounding through the whole UNet
    # what diffusers computes on the same weights is far from it (here 100 %)
    assert not close(diffusers_own.sample, expected, 0.3)
    # its control net sets use_inflated_groupnorm: there each frame keeps its own norm
    from paintstep.model.processpainter import PooledGroupNorm

    assert not any(isinstance(m, PooledGroupNorm) for m in model.pipe.controlnet.modules())


def sd15_inversion(root, image: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """ProcessPainter's ddim.py, written out: the VAE's mean latent times the scaling factor,
    then inverse DDIM through plain SD1.5 with an empty prompt, no guidance, SD1.5's scheduler
    config ("leading" steps 1, 21, ... 981; alpha at the start alphas_cumprod[0])."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    base = root / "sd15"
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    vae = AutoencoderKL.from_pretrained(base / "vae")
    text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(base / "tokenizer")
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0).float()
    ratio = 1000 // steps
    with torch.no_grad():
        ids = tokenizer("", padding="max_length", max_length=77, return_tensors="pt").input_ids
        empty = text_encoder(ids)[0]
        x = vae.encode(image).latent_dist.mean * vae.config.scaling_factor
        for t in range(1, 1000, ratio):
            eps = unet(x, t, encoder_hidden_states=empty).sample
            a_from = alphas[t - ratio] if t - ratio >= 0 else alphas[0]
            a_to = alphas[t]
            x0 = (x - (1 - a_from) ** 0.5 * eps) / a_from**0.5
            x = a_to**0.5 * x0 + (1 - a_to) ** 0.5 * eps
    return x


def starting_latents(model, conditions, inversion):
    """The latents the pipeline's UNet first sees (the unconditional half) for a generation."""
    seen = []

    def first(module, args, kwargs):
        if not seen:
            seen.append((args[0] if args else kwargs["sample"])[0].clone())

    hook = model.pipe.unet.register_forward_pre_hook(first, with_kwargs=True)
    settings = {
        "frames": FRAMES,
        "sampling_steps": 2,
        "guidance": 5.0,
        "control": 1.0,
        "lora": "",
        "lora_scale": 1.0,
        "inversion": inversion,
    }
    try:
        model.generate(conditions, (32, 32), "", 3, settings, threading.Event(), lambda d: None)
    finally:
        hook.remove()
    return seen[0]


def as_tensor(picture: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(picture.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def test_the_held_frames_start_from_the_ddim_inversion_of_their_pictures(saved, model):
    """As ProcessPainter's cn-final configs (ddim: true) do: the start canvas's frame and the
    target's frame begin as their inversions, the frames between as noise."""
    root = saved[0]
    start = photo("astronaut", 32)[:32, :32, :3]
    goal = np.ascontiguousarray(photo("coffee", 48)[:32, 8:40, :3])
    latents = starting_latents(model, [start, goal], "auto")  # auto: ProcessPainter's weights
    for frame, picture in ((0, start), (FRAMES - 1, goal)):
        expected = sd15_inversion(root, as_tensor(picture))[0]
        assert close(latents[:, frame], expected), frame
    noise = latents[:, 1 : FRAMES - 1]
    assert abs(float(noise.std()) - 1) < 0.25 and abs(float(noise.mean())) < 0.25

    plain = starting_latents(model, [start, goal], "off")
    assert not torch.allclose(plain[:, 0], latents[:, 0], atol=1e-2)


@pytest.fixture
def calls(saved, model, monkeypatch):
    """The engine on ProcessPainter's weights, with the pipeline's run recorded (and frames of
    noise made instead): what it was asked for is what is tested."""
    from paintstep.model import video

    recorded = []

    def run(self, seed, expected, cancel, report, pipe=None, prepare=None, **arguments):
        recorded.append(arguments)
        shape = (arguments["num_frames"], arguments["height"], arguments["width"], 3)
        return np.random.default_rng(seed).random(shape, np.float32)

    monkeypatch.setattr(video.Model, "run", run)
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(saved[0] / "diffusion.json"))
    return recorded


def seen_as(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(picture[..., :3]).resize(size, Image.Resampling.LANCZOS))


def test_processpainters_recipe_is_the_default_with_its_weights(calls, model):
    """8 frames, 50 DDIM steps on "leading" timesteps, guidance 5, its negative prompt; more
    steps than frames are painted between the frames."""
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest

    target = photo("astronaut", 48)
    canvas = target.copy()
    canvas[:, 24:] = [230, 220, 200, 255]
    request = PaintRequest(canvas, target=target, steps=12, options={"size": 32})
    layers = list(get_engine("diffusion").paint(request))
    assert [layer.index for layer in layers] == list(range(1, 13))
    (call,) = calls
    assert call["num_frames"] == 8 and call["num_inference_steps"] == 50
    assert call["guidance_scale"] == 5.0
    assert call["negative_prompt"] == "worst quality, low quality, letterboxed"
    scheduler = model.pipe.scheduler
    scheduler.set_timesteps(50)
    assert scheduler.timesteps[0] == 981 and scheduler.timesteps[-1] == 1
    assert scheduler.config.beta_schedule == "linear" and scheduler.config.set_alpha_to_one

    given = {"size": 32, "frames": 12, "sampling_steps": 3, "guidance": 2.0}
    list(get_engine("diffusion").paint(PaintRequest(canvas, target=target, options=given)))
    assert calls[1]["num_frames"] == 12 and calls[1]["num_inference_steps"] == 3
    assert calls[1]["guidance_scale"] == 2.0


def test_the_start_holds_frame_0_and_the_target_the_last(calls):
    """Semi-to-complete as ProcessPainter trained for it: the canvas conditions frame 0 and,
    with a target, the target the last frame; without one only frame 0 is held."""
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest

    target = photo("coffee", 40)
    canvas = np.full_like(target, 255)
    canvas[:10] = target[:10]
    list(get_engine("diffusion").paint(PaintRequest(canvas, target=target, steps=3)))
    list(get_engine("diffusion").paint(PaintRequest(canvas, steps=3, complete=True)))
    with_target, completing = calls
    size = (with_target["width"], with_target["height"])
    assert with_target["controlnet_frame_indices"] == [0, with_target["num_frames"] - 1]
    first, last = (np.asarray(image) for image in with_target["conditioning_frames"])
    assert np.array_equal(first, seen_as(canvas, size))
    assert np.array_equal(last, seen_as(target, size))
    assert completing["controlnet_frame_indices"] == [0]
    (only,) = completing["conditioning_frames"]
    assert np.array_equal(np.asarray(only), seen_as(canvas, size))


def domain_adapter_file(unet, generator) -> dict:
    """A domain adapter as AnimateDiff saves v3_sd15_adapter.ckpt (and ProcessPainter's
    load_diffusers_lora reads it): a LoRA pair (r 4) on every spatial attention projection,
    under diffusers' old attention-processor names."""
    state = {}
    for name, module in unet.named_modules():
        if not name.endswith((".attn1", ".attn2")):
            continue
        for projection, layer in (
            ("to_q", module.to_q),
            ("to_k", module.to_k),
            ("to_v", module.to_v),
            ("to_out", module.to_out[0]),
        ):
            out_features, in_features = layer.weight.shape
            key = f"{name}.processor.{projection}_lora"
            state[f"{key}.down.weight"] = torch.randn(4, in_features, generator=generator)
            state[f"{key}.up.weight"] = torch.randn(out_features, 4, generator=generator) * 0.1
    return state


@pytest.fixture(scope="module")
def adapted(saved):
    """The engine's model with the domain adapter in its slot (at 0.5), and the file's pairs."""
    from paintstep.model import video
    from paintstep.model.weights import load_weights

    root, parts, _ = saved
    state = domain_adapter_file(parts["unet"], torch.Generator().manual_seed(9))
    torch.save({"state_dict": state}, root / "v3_sd15_adapter.ckpt")
    (root / "loras").mkdir(exist_ok=True)
    from safetensors.torch import save_file

    save_file(state, root / "loras" / "domain.safetensors")
    entries = json.loads((root / "diffusion.json").read_text())
    config = root / "with-adapter.json"
    extra = {"adapter": "v3_sd15_adapter.ckpt", "adapter_scale": 0.5, "loras": "loras"}
    config.write_text(json.dumps({**entries, **extra}))
    return video.Video.get(load_weights(config), "fp32"), state


def test_the_domain_adapter_is_merged_into_the_spatial_layers_at_its_scale(saved, adapted):
    from diffusers import UNet2DConditionModel

    model, state = adapted
    plain = UNet2DConditionModel.from_pretrained(saved[0] / "sd15" / "unet")
    original = dict(plain.named_parameters())
    merged = dict(model.pipe.unet.named_parameters())
    checked = 0
    for key, down in state.items():
        if not key.endswith(".down.weight"):
            continue
        up = state[key.replace(".down.", ".up.")]
        layer = key.replace(".processor.", ".").replace("_lora.down", "")
        layer = layer.replace(".to_out.weight", ".to_out.0.weight")
        expected = original[layer] + 0.5 * up @ down
        assert torch.allclose(merged[layer], expected, atol=1e-5), layer
        checked += 1
    assert checked == len(state) // 2 > 0
    # the inversion's SD1.5 stays plain, as ProcessPainter's ddim pipeline is
    some = next(k for k in original if k.endswith("attn1.to_q.weight"))
    assert torch.equal(dict(model.plain_unet.named_parameters())[some], original[some])


def test_a_lora_that_adapts_no_layer_is_an_error_naming_the_file(adapted):
    from paintstep.process import PaintError

    model, _ = adapted
    with pytest.raises(PaintError, match=r"domain\.safetensors.*adapts no layer.*adapter"):
        model.use_lora("domain", 1.0)

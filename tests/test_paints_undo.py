"""The paints-undo engine with tiny Paints-UNDO models of random weights on the CPU.

The weights are saved as Paints-UNDO releases them, with the key names of its own modules
(tests/undo_layout.py re-creates its code), and the engine loads them from there strictly. The
pictures are noise; what is tested is what a painter relies on (the steps, the canvas kept,
the target reached exactly, cancel) and that the models compute what Paints-UNDO's code does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import photo

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from paintstep import engines  # noqa: E402
from paintstep.engines import engine_names, get_engine  # noqa: E402
from paintstep.process import PaintError, PaintRequest, frames  # noqa: E402
from undo_layout import paints_undo_noise, paints_undo_unet, undo_weights  # noqa: E402

FAST = {"size": 64, "sampling_steps": 2, "operation_steps": "900,400"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return undo_weights(tmp_path_factory.mktemp("undo"))


@pytest.fixture
def engine(weights, monkeypatch):
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    return get_engine("paints-undo")


def half_painted(side: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A target and a canvas on which its left half is finished, the right still paper."""
    target = photo("astronaut", side)
    canvas = target.copy()
    canvas[:, side // 2 :, :3] = 255
    return canvas, target


def run(engine, request, cancel=None, report=None):
    return list(engine.paint(request, cancel, report))


# The weights list and the registry -----------------------------------------------------------


def test_the_engine_is_offered_only_where_its_weights_are_named(weights, tmp_path, monkeypatch):
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(tmp_path / "none.json"))
    assert "paints-undo" not in engine_names()
    assert "paints-undo" in engine_names(every=True)  # asked for by name, it says what lacks
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    assert "paints-undo" in engine_names()
    # A server hands its weights list over (--diffusion-config), the environment aside.
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setitem(engines.CONFIGURED, "paints-undo", {"weights_config": weights})
    assert "paints-undo" in engine_names()


def test_missing_weights_get_a_sentence_naming_what_goes_where(weights, tmp_path, monkeypatch):
    engine = get_engine("paints-undo")
    canvas, target = half_painted()
    request = PaintRequest(canvas, target=target, steps=2, options=FAST)
    config = tmp_path / "diffusion.json"
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(config))
    with pytest.raises(PaintError, match="needs Paints-UNDO's weights.*listed in .*diffusion.json"):
        run(engine, request)
    config.write_text(json.dumps({"base": "sd15"}))
    with pytest.raises(PaintError, match='needs "paints_undo_single_frame".*Hugging Face'):
        run(engine, request)
    (tmp_path / "release" / "unet").mkdir(parents=True)
    config.write_text(json.dumps({"paints_undo_single_frame": "release"}))
    with pytest.raises(PaintError, match="found no unet/config.json in .*release"):
        run(engine, request)
    # The diffusion engine reads the same list and leaves these keys to this engine.
    from paintstep.model.weights import load_weights

    assert load_weights(weights).base is None


def test_asking_to_invent_or_for_unreadable_keyframes_gets_a_sentence(engine):
    canvas, target = half_painted()
    with pytest.raises(PaintError, match="cannot invent"):
        run(engine, PaintRequest(canvas, steps=2, complete=True, options=FAST))
    options = {**FAST, "operation_steps": "900,later"}
    with pytest.raises(PaintError, match="operation_steps must list whole numbers from 0 to 999"):
        run(engine, PaintRequest(canvas, target=target, steps=2, options=options))


def test_listing_the_engine_and_checking_its_weights_does_not_import_torch(weights):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from paintstep.engines import engine_names, get_engine\n"
        "from paintstep.model.undo.weights import load_undo_weights\n"
        "assert 'paints-undo' in engine_names()\n"
        "info = get_engine('paints-undo').describe()\n"
        "assert info['prompt'] and not info['invents'] and info['unavailable'] is None, info\n"
        "load_undo_weights(Path(sys.argv[1])).check(multi_frame=False)\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
    )
    env = {"PAINTSTEP_DIFFUSION_CONFIG": str(weights)}
    subprocess.run([sys.executable, "-c", code, str(weights)], check=True, env=env)


# The single-frame model ------------------------------------------------------------------------


def test_the_single_frame_unet_predicts_what_paints_undos_modified_unet_predicts(weights):
    from paintstep.model.undo.single_frame import load_unet, predict_noise

    ours = load_unet(weights.parent / "paints_undo_single_frame" / "unet")
    theirs = paints_undo_unet()  # the same seed: the weights that were saved
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn(3, 4, 8, 8, generator=generator)
    timesteps = torch.tensor([10, 500, 999])
    text = torch.randn(3, 77, 32, generator=generator)
    finished = torch.randn(1, 4, 8, 8, generator=generator)
    steps = torch.tensor([400, 800, 999])
    with torch.no_grad():
        got = predict_noise(ours, latents, timesteps, text, finished, steps)
        expected = paints_undo_noise(theirs, latents, timesteps, text, finished, steps)
        # The finished picture and the operation step both reach the prediction.
        other_picture = predict_noise(ours, latents, timesteps, text, -finished, steps)
        other_steps = predict_noise(ours, latents, timesteps, text, finished, steps.flip(0))
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert (got - other_picture).abs().mean() > 1e-3
    assert (got - other_steps).abs().mean() > 1e-3


def test_a_unet_file_with_a_missing_or_left_over_key_is_refused_naming_it(weights, tmp_path):
    from paintstep.model.undo.single_frame import load_unet
    from safetensors.torch import load_file, save_file

    released = weights.parent / "paints_undo_single_frame" / "unet"
    state = load_file(str(released / "diffusion_pytorch_model.safetensors"))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text((released / "config.json").read_text())
    file = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({k: v for k, v in state.items() if k != "add_embedding.linear_2.bias"}, str(file))
    with pytest.raises(PaintError, match=r"lacks 1 keys \(add_embedding.linear_2.bias\)"):
        load_unet(tmp_path / "unet")
    save_file({**state, "conv_in.extra": torch.zeros(1)}, str(file))
    with pytest.raises(PaintError, match=r"has unexpected 1 keys \(conv_in.extra\)"):
        load_unet(tmp_path / "unet")
    save_file({**state, "conv_in.weight": state["conv_in.weight"][:, :4].contiguous()}, str(file))
    with pytest.raises(PaintError, match="another shape .*conv_in.weight"):
        load_unet(tmp_path / "unet")


def test_the_sampler_follows_paints_undos_k_diffusion():
    """Karras sigmas of the linear 0.00085-0.020 schedule and DPM-Solver++(2M), against a
    re-creation of diffusers_helper/k_diffusion.py on a toy denoiser."""
    from paintstep.model.undo.sampler import KarrasSampler

    betas = torch.linspace(0.00085, 0.020, 1000, dtype=torch.float64)
    alphas_cumprod = torch.tensor(np.cumprod(1.0 - betas.numpy()), dtype=torch.float32)
    table = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    ramp = torch.linspace(0, 1, 7)
    high, low = table[-1] ** (1 / 7), table[0] ** (1 / 7)
    sigmas = torch.cat([(high + ramp * (low - high)) ** 7, torch.zeros(1)])

    def toy_noise(x, t):
        return 0.3 * x + t[:, None, None, None] / 1000

    def model(x, sigma):
        dists = sigma.log() - table.log()[:, None]
        t = dists.abs().argmin(dim=0).view(sigma.shape)
        scaled = x / (sigma[:, None, None, None] ** 2 + 1) ** 0.5
        return x - toy_noise(scaled, t) * sigma[:, None, None, None]

    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    expected, old = x.clone(), None
    for i in range(len(sigmas) - 1):
        denoised = model(expected, sigmas[i] * expected.new_ones([2]))
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            expected = (sigmas[i + 1] / sigmas[i]) * expected - (-h).expm1() * denoised
        else:
            r = (t + sigmas[i - 1].log()) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            expected = (sigmas[i + 1] / sigmas[i]) * expected - (-h).expm1() * d
        old = denoised
    sampler = KarrasSampler()
    assert torch.allclose(sampler.karras_sigmas(7), sigmas)
    got = sampler.sample(toy_noise, x, sampler.karras_sigmas(7), lambda i: None)
    assert torch.allclose(got, expected, atol=1e-5)


# The engine end to end ---------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3, 7])
def test_the_process_runs_from_the_canvas_to_the_target_and_keeps_finished_pixels(engine, steps):
    canvas, target = half_painted()
    request = PaintRequest(canvas, target=target, steps=steps, options=FAST)
    layers = run(engine, request)
    assert [layer.index for layer in layers] == list(range(1, steps + 1))
    shown = [request.first_frame(), *frames(request.first_frame(), layers)]
    assert np.array_equal(shown[0], canvas)
    assert np.array_equal(shown[-1], target)  # the last frame is the target, exactly
    for frame in shown:  # the finished half stays exactly as the artist painted it
        assert np.array_equal(frame[:, :32], canvas[:, :32])


def test_from_blank_paper_it_paints_the_picture(engine):
    _, picture = half_painted()
    request = PaintRequest(picture, steps=3, options=FAST)
    shown = [request.first_frame(), *frames(request.first_frame(), run(engine, request))]
    assert (shown[0][..., :3] == 255).all()  # white paper
    assert np.array_equal(shown[-1], picture)
    assert not np.array_equal(shown[1], shown[0])  # the first keyframe paints something


def test_the_keyframes_are_the_models_and_the_seed_sets_them(engine):
    canvas, target = half_painted()

    def process(seed, **options):
        request = PaintRequest(canvas, target=target, steps=3, seed=seed, options=FAST | options)
        return [layer.pixels for layer in run(engine, request)]

    first = process(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, process(0)))
    assert not np.array_equal(first[0], process(1)[0])
    assert not np.array_equal(first[0], process(0, operation_steps="100,400")[0])


def test_cancel_during_denoising_stops_before_any_step(engine):
    cancel = threading.Event()
    seen = []

    def report(done, stage):
        seen.append(stage)
        if stage == "denoising" and done > 0:
            cancel.set()

    canvas, target = half_painted()
    options = {**FAST, "sampling_steps": 30}
    request = PaintRequest(canvas, target=target, steps=3, options=options)
    assert run(engine, request, cancel, report) == []
    assert seen.count("denoising") <= 2  # stopped within one denoising step


def test_cancel_between_steps_stops_within_one_step(engine):
    cancel = threading.Event()
    canvas, target = half_painted()
    got = []
    for layer in engine.paint(PaintRequest(canvas, target=target, steps=3, options=FAST), cancel):
        got.append(layer)
        cancel.set()
    assert len(got) == 1

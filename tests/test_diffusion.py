"""The diffusion engine with tiny models of random weights on the CPU, loaded as a user's are.

Every component (UNet, motion adapter, sparse control net, VAE, CLIP text encoder, tokenizer) is
built from a config, saved in the diffusers folder layout and listed in a weights config file,
then the engine loads it from there. The pictures such models make are noise; what is tested is
what a painter relies on: the number and size of the steps, the kept pixels, the conditioning,
cancel, LoRAs, determinism, and the sentences that say what is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import diffusion_weights, photo

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from paintstep.engines import get_engine  # noqa: E402
from paintstep.process import PaintError, PaintRequest, composite, frames  # noqa: E402

FAST = {"size": 32, "frames": 8, "sampling_steps": 3}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return diffusion_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def engine(weights, monkeypatch):
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    return get_engine("diffusion")


def run(engine, request, cancel=None, report=None):
    return list(engine.paint(request, cancel, report))


def last_frame(request, layers):
    *_, frame = frames(request.first_frame(), layers)
    return frame


@pytest.mark.parametrize("steps", [1, 5, 7, 19, 30])
def test_n_steps_of_the_canvas_size_come_out_in_order(engine, steps):
    canvas = photo("astronaut", 72)
    request = PaintRequest(canvas, steps=steps, complete=True, prompt="a portrait", options=FAST)
    layers = run(engine, request)
    assert [layer.index for layer in layers] == list(range(1, steps + 1))
    for layer in layers:
        assert 0 <= layer.x and layer.x + layer.width <= canvas.shape[1]
        assert 0 <= layer.y and layer.y + layer.height <= canvas.shape[0]
        assert layer.thumbnail is not None and max(layer.thumbnail.shape[:2]) <= 256
    # the model painted something: the process does not end where it began
    assert np.abs(last_frame(request, layers).astype(int) - canvas).mean() > 5


def test_every_frame_is_the_model_frame_brought_back_to_the_canvas(engine):
    """Frames of a working resolution 4x smaller still come out at the canvas's size and,
    composited step by step, the thumbnails show those frames."""
    canvas = photo("coffee", 128)
    request = PaintRequest(canvas, steps=4, complete=True, options=FAST)
    layers = run(engine, request)
    frame = request.first_frame()
    for layer in layers:
        composite(frame, layer)
        assert frame.shape == canvas.shape
        small = np.asarray(
            __import__("PIL.Image").Image.fromarray(frame).resize(layer.thumbnail.shape[1::-1])
        )
        assert np.abs(small.astype(int) - layer.thumbnail).mean() < 6


def test_outside_the_mask_the_artists_pixels_stay_exactly(engine):
    canvas = photo("chelsea", 96)
    mask = np.zeros(canvas.shape[:2], bool)
    mask[10:50, 20:70] = True
    request = PaintRequest(canvas, mask=mask, steps=5, complete=True, options=FAST)
    layers = run(engine, request)
    for frame in frames(request.first_frame(), layers):
        assert np.array_equal(frame[~mask], canvas[~mask])
    changed = np.abs(last_frame(request, layers).astype(int) - canvas).max(axis=2)
    assert changed[mask].mean() > 5


def test_with_a_target_finished_parts_stay_and_the_process_ends_on_the_target(engine):
    target = photo("astronaut", 80)
    canvas = target.copy()
    canvas[:, 40:] = [200, 180, 160, 255]  # the right half not painted yet
    request = PaintRequest(canvas, target=target, steps=6, options=FAST)
    layers = run(engine, request)
    for frame in frames(request.first_frame(), layers):
        assert np.array_equal(frame[:, :38], canvas[:, :38])
    assert np.array_equal(last_frame(request, layers), target)


def test_reconstruct_paints_the_canvas_from_blank_paper(engine):
    canvas = photo("coffee", 64)
    request = PaintRequest(canvas, steps=4, options=FAST)
    layers = run(engine, request)
    assert (request.first_frame() == 255).all()
    assert np.array_equal(last_frame(request, layers), canvas)


def test_the_conditioning_frame_changes_what_the_model_paints(engine, weights):
    """The start canvas is what frame 0 is held to: another start, other frames; with the
    control net's strength at zero the start no longer reaches the model at all."""
    from paintstep.model import video
    from paintstep.model.weights import load_weights

    model = video.Video.get(load_weights(weights), "auto")
    a = photo("astronaut", 32)[..., :3]
    b = np.ascontiguousarray(a[::-1])

    def generated(start, control):
        settings = {**FAST, "control": control, "guidance": 7.5, "lora": "", "lora_scale": 1.0}
        out = model.generate([start], (32, 32), "", 0, settings, threading.Event(), print)
        assert out.shape == (8, 32, 32, 3)
        return out

    assert np.abs(generated(a, 1.0) - generated(b, 1.0)).max() > 0.01
    assert np.array_equal(generated(a, 0.0), generated(b, 0.0))


def test_the_same_seed_paints_the_same_process_and_another_seed_another(engine):
    canvas = photo("chelsea", 64)

    def process(seed):
        request = PaintRequest(canvas, steps=3, seed=seed, complete=True, options=FAST)
        return last_frame(request, run(engine, request))

    assert np.array_equal(process(1), process(1))
    assert not np.array_equal(process(1), process(2))


def test_cancel_during_denoising_stops_before_any_step(engine):
    cancel = threading.Event()
    seen = []

    def report(done, stage):
        seen.append(stage)
        if stage == "denoising" and done > 0:
            cancel.set()

    options = {**FAST, "sampling_steps": 50}
    request = PaintRequest(photo("coffee", 64), steps=5, complete=True, options=options)
    assert run(engine, request, cancel, report) == []
    assert seen.count("denoising") <= 3  # stopped within one denoising step


def test_cancel_between_steps_stops_within_one_step(engine):
    cancel = threading.Event()
    request = PaintRequest(photo("coffee", 64), steps=6, complete=True, options=FAST)
    got = []
    for layer in engine.paint(request, cancel):
        got.append(layer)
        cancel.set()
    assert len(got) == 1


def test_a_lora_changes_the_output_and_can_be_removed(engine):
    canvas = photo("astronaut", 64)

    def process(**options):
        request = PaintRequest(canvas, steps=2, complete=True, options={**FAST, **options})
        return last_frame(request, run(engine, request)).astype(int)

    plain = process()
    styled = process(lora="watercolour")
    assert np.abs(styled - plain).mean() > 1
    weaker = process(lora="watercolour", lora_scale=0.3)
    assert 0 < np.abs(weaker - plain).mean() < np.abs(styled - plain).mean()
    assert np.array_equal(process(), plain)  # without it, exactly as before


def test_light_mode_invents_the_picture_and_strokes_paint_it(engine):
    canvas = photo("chelsea", 96)
    mask = np.zeros(canvas.shape[:2], bool)
    mask[:, 48:] = True
    request = PaintRequest(
        canvas, mask=mask, steps=6, complete=True, options={**FAST, "mode": "light"}
    )
    layers = run(engine, request)
    assert len(layers) == 6
    for frame in frames(request.first_frame(), layers):
        assert np.array_equal(frame[~mask], canvas[~mask])
    assert np.abs(last_frame(request, layers).astype(int) - canvas)[mask].mean() > 5


def test_missing_weights_get_a_sentence_naming_the_file_and_where_it_goes(
    tmp_path, monkeypatch, weights
):
    engine = get_engine("diffusion")
    request = PaintRequest(photo("coffee", 32), steps=2, complete=True, options=FAST)
    config = tmp_path / "diffusion.json"
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(config))
    with pytest.raises(PaintError, match="listed in .*diffusion.json.*JSON"):
        run(engine, request)

    config.write_text(json.dumps({"base": str(weights.parent / "sd15"), "control": "nowhere"}))
    with pytest.raises(PaintError, match='needs "motion": the motion module'):
        run(engine, request)

    config.write_text(
        json.dumps(
            {
                "base": str(weights.parent / "sd15"),
                "motion": str(weights.parent / "motion"),
                "control": "nowhere",
            }
        )
    )
    with pytest.raises(PaintError, match=f'no "control" at {tmp_path / "nowhere"}'):
        run(engine, request)

    broken = tmp_path / "motion.safetensors"
    broken.write_bytes(b"not weights at all")
    entries = {"base": str(weights.parent / "sd15"), "motion": str(broken)}
    config.write_text(json.dumps({**entries, "control": str(weights.parent / "control")}))
    with pytest.raises(PaintError, match="Could not load the motion module from .*motion.safe"):
        run(engine, request)

    lora = dict(FAST, lora="oils")
    config.write_text(weights.read_text())
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    with pytest.raises(PaintError, match="no LoRA 'oils'.*there: watercolour"):
        run(engine, PaintRequest(photo("coffee", 32), steps=2, complete=True, options=lora))


def test_strokes_refuses_to_invent_and_says_which_engine_can():
    request = PaintRequest(photo("coffee", 32), steps=2, complete=True)
    with pytest.raises(PaintError, match="cannot invent.*diffusion"):
        list(get_engine("strokes").paint(request))


def test_listing_the_engines_and_checking_the_weights_does_not_import_torch(weights):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from paintstep.engines import get_engine\n"
        "from paintstep.model.weights import load_weights\n"
        "info = get_engine('diffusion').describe()\n"
        "assert info['prompt'] and info['invents'] and info['unavailable'] is None, info\n"
        "load_weights(Path(sys.argv[1])).check('video', 'watercolour')\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(weights)], check=True)


def test_single_files_in_the_original_layout_paint_what_the_folders_paint(
    weights, tmp_path, monkeypatch
):
    """A motion module as AnimateDiff's .ckpt and the control net as a .safetensors file in
    SparseCtrl's layout: converted on load, the same process comes out."""
    from diffusers import MotionAdapter, SparseControlNetModel
    from paintstep.model.video import Model
    from safetensors.torch import save_file
    from test_convert import original_state

    root = weights.parent
    motion = original_state(MotionAdapter.from_pretrained(root / "motion"))
    torch.save({"state_dict": motion}, tmp_path / "mm.ckpt")
    control = original_state(SparseControlNetModel.from_pretrained(root / "control"))
    save_file({k: v.contiguous() for k, v in control.items()}, tmp_path / "ctrl.safetensors")
    config = tmp_path / "diffusion.json"
    entries = {"base": str(root / "sd15"), "motion": "mm.ckpt", "control": "ctrl.safetensors"}
    config.write_text(json.dumps({**entries, "device": "cpu"}))

    request = PaintRequest(photo("coffee", 48), steps=3, complete=True, options=FAST)
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    from_folders = last_frame(request, run(get_engine("diffusion"), request))
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(config))
    from_files = last_frame(request, run(get_engine("diffusion"), request))
    assert Model.loaded is not None and Model.loaded.weights.config == config
    assert np.array_equal(from_files, from_folders)


def test_a_diffusion_job_on_the_server_reports_denoising_then_streams_its_steps(
    weights, tmp_path, monkeypatch
):
    from paintstep.wire.client import Client, Done, Progress, Step
    from test_server import ServerProcess

    monkeypatch.delenv("PAINTSTEP_DIFFUSION_CONFIG", raising=False)
    server = ServerProcess(tmp_path, "--diffusion-config", str(weights)).start()
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))  # for the local run below
    try:
        canvas = photo("chelsea", 64)
        request = PaintRequest(canvas, steps=4, complete=True, prompt="a cat", options=FAST)
        with Client(server.address, timeout=60) as client:
            events = list(client.generate_request(request, engine="diffusion"))
        stages = [e.stage for e in events if isinstance(e, Progress)]
        done = [e.done for e in events if isinstance(e, Progress)]
        assert done == sorted(done) and done[-1] == 1.0  # the docker's bar never goes back
        steps = [e.to_layer() for e in events if isinstance(e, Step)]
        assert "denoising" in stages and stages.index("denoising") < stages.index("painting")
        assert [s.index for s in steps] == [1, 2, 3, 4]
        assert isinstance(events[-1], Done) and events[-1].state == "finished"
        local = run(get_engine("diffusion"), request)
        assert np.array_equal(last_frame(request, steps), last_frame(request, local))
    finally:
        server.stop()


def test_paint_command_runs_the_diffusion_engine(weights, tmp_path, monkeypatch):
    from paintstep.cli import main
    from PIL import Image

    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    start = tmp_path / "sketch.png"
    Image.fromarray(photo("coffee", 64)).save(start)
    out = tmp_path / "out"
    args = ["paint", str(start), "--engine", "diffusion", "--complete", "--prompt", "coffee"]
    args += ["--steps", "5", "--out", str(out), "-q"]
    for name, value in FAST.items():
        args += ["-o", f"{name}={value}"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "diffusion" and len(manifest["steps"]) == 5
    assert (out / "process.gif").stat().st_size > 0


@pytest.mark.parametrize(
    "free_gib, plan", [(40, "fp16"), (12, "sliced"), (6, "offload"), (2, "offload")]
)
def test_the_memory_switches_follow_the_gpus_free_memory(monkeypatch, free_gib, plan):
    from paintstep.model import video

    gib = 1024**3
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_gib * gib, 80 * gib))
    chosen, why = video.choose_memory("auto", torch.device("cuda"))
    assert chosen.name == plan and f"{free_gib:.1f}" in why
    assert video.choose_memory("fp32", torch.device("cuda"))[0].name == "fp32"  # as asked
    assert video.choose_memory("auto", torch.device("cpu"))[0].dtype == torch.float32


def test_the_lean_plans_chunk_the_feed_forward_and_slice_the_vae():
    from diffusers import AnimateDiffSparseControlNetPipeline
    from paintstep.model import random_models, video

    parts = random_models.build(random_models.TINY)
    adapter = parts.pop("motion_adapter")
    pipe = AnimateDiffSparseControlNetPipeline(**parts, motion_adapter=adapter)
    blocks = [m for m in pipe.unet.modules() if hasattr(m, "_chunk_size")]
    assert blocks and all(b._chunk_size is None for b in blocks)
    video.place(pipe, video.MEMORY["sliced"], torch.device("cpu"))
    assert all(b._chunk_size == 1 and b._chunk_dim == 1 for b in blocks)
    assert pipe.vae.use_slicing


def test_out_of_gpu_memory_retries_once_with_the_next_plan_and_says_so(
    weights, monkeypatch, caplog
):
    from paintstep.model import video
    from paintstep.model.weights import load_weights

    model = video.Video.get(load_weights(weights), "auto")
    monkeypatch.setattr(model, "memory", video.MEMORY["fp16"])  # restored afterwards
    placed, tries, failing = [], [], {"fp16"}
    monkeypatch.setattr(video, "place", lambda pipe, memory, device: placed.append(memory) or pipe)

    def run_once(*args):
        tries.append(model.memory.name)
        if model.memory.name in failing:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.zeros((8, 32, 32, 3), np.float32)

    monkeypatch.setattr(model, "run_once", run_once)
    with caplog.at_level("WARNING", logger="paintstep.diffusion"):
        out = model.run(0, 3, threading.Event(), lambda share: None)
    assert out.shape == (8, 32, 32, 3) and tries == ["fp16", "sliced"]
    assert [p.name for p in placed] == ["sliced"]
    assert "ran out of memory with the fp16 plan" in caplog.text
    failing |= {"sliced", "offload"}
    with pytest.raises(PaintError, match="even with the offload plan.*size"):
        model.run(0, 3, threading.Event(), lambda share: None)  # sliced -> offload, once
    assert tries[2:] == ["sliced", "offload"]


def blob(size: int = 64) -> np.ndarray:
    """A soft round blob on transparency: alpha from 255 in the middle to 0 at the edge."""
    y, x = np.mgrid[:size, :size]
    distance = np.hypot(x - size / 2, y - size / 2) / (size / 2)
    picture = np.zeros((size, size, 4), np.uint8)
    picture[..., :3] = photo("astronaut", size)[..., :3]
    picture[..., 3] = np.clip((1 - distance) * 400, 0, 255).astype(np.uint8)
    return picture


@pytest.mark.parametrize("steps", [4, 30])
def test_a_translucent_picture_painted_from_transparent_paper_ends_on_itself(engine, steps):
    canvas = blob()
    request = PaintRequest(canvas, steps=steps, paper="transparent", options=FAST)
    last = last_frame(request, run(engine, request))
    seen = canvas[..., 3] > 0  # a fully transparent pixel's colour is no colour
    assert np.array_equal(last[..., 3], canvas[..., 3])
    assert np.array_equal(last[seen], canvas[seen])


def test_with_more_steps_than_frames_translucent_untouched_pixels_stay(engine):
    """Strokes painting between frames must not lay paint where the frames agree: there,
    paint over translucent pixels would only thicken them."""
    canvas = blob()
    mask = np.zeros(canvas.shape[:2], bool)
    mask[:, 32:] = True
    request = PaintRequest(canvas, mask=mask, steps=30, complete=True, options=FAST)
    for frame in frames(request.first_frame(), run(engine, request)):
        assert np.array_equal(frame[~mask], canvas[~mask])


def test_progress_only_goes_forward(engine):
    seen = []
    request = PaintRequest(photo("coffee", 48), steps=4, complete=True, options=FAST)
    run(engine, request, None, lambda done, stage: seen.append(done))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


def test_weights_paths_may_start_at_home_and_lora_names_may_have_dots(
    weights, tmp_path, monkeypatch
):
    import shutil

    from paintstep.model.weights import load_weights

    home = tmp_path / "home"
    shutil.copytree(weights.parent / "loras", home / "my loras")
    shutil.copy(
        home / "my loras" / "watercolour.safetensors", home / "my loras" / "water.v2.safetensors"
    )
    monkeypatch.setenv("HOME", str(home))
    config = tmp_path / "diffusion.json"
    entries = json.loads(weights.read_text())
    entries = {k: str(weights.parent / v) for k, v in entries.items() if k != "device"}
    config.write_text(json.dumps({**entries, "loras": "~/my loras", "device": "cpu"}))
    assert load_weights(config).loras == home / "my loras"

    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(config))
    canvas = photo("coffee", 48)

    def process(**options):
        request = PaintRequest(canvas, steps=2, complete=True, options={**FAST, **options})
        return last_frame(request, run(get_engine("diffusion"), request))

    assert np.array_equal(process(lora="water.v2"), process(lora="watercolour"))


def test_each_step_is_a_model_frame_when_the_model_can_make_that_many(engine, monkeypatch):
    """N steps want N + 1 frames (frame 0 is the start): up to 24 the model makes them all,
    so no step is brushwork between frames; beyond, strokes fill in."""
    import paintstep.model.diffusion as diffusion

    between = []
    original = diffusion.painted_between
    monkeypatch.setattr(
        diffusion, "painted_between", lambda *a: between.append(a[2]) or original(*a)
    )
    canvas = photo("coffee", 48)
    run(engine, PaintRequest(canvas, steps=12, complete=True, options=FAST))
    assert between == []
    run(engine, PaintRequest(canvas, steps=30, complete=True, options=FAST))
    assert sum(between) == 30 and len(between) == 23


def test_the_servers_weights_list_is_handed_to_the_engine_not_set_in_the_environment(
    weights, tmp_path, monkeypatch
):
    import os

    from paintstep import engines
    from paintstep.cli import build_parser
    from paintstep.serve.settings import from_options

    monkeypatch.setattr(engines, "CONFIGURED", {})
    elsewhere = str(tmp_path / "elsewhere.json")  # no such file
    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", elsewhere)
    args = build_parser().parse_args(["serve", "--diffusion-config", str(weights)])
    engines.configure(from_options(args).engine_settings())
    engine = get_engine("diffusion")
    assert engine.weights_config == weights.resolve()
    request = PaintRequest(photo("coffee", 48), steps=2, complete=True, options=FAST)
    assert len(run(engine, request)) == 2
    assert os.environ["PAINTSTEP_DIFFUSION_CONFIG"] == elsewhere

    missing = build_parser().parse_args(["serve", "--diffusion-config", elsewhere])
    with pytest.raises(PaintError, match="no weights list at .*elsewhere.json"):
        from_options(missing)

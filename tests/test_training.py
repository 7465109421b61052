"""`paintstep train-lora` with tiny models of random weights on the CPU.

The weights are the diffusion engine's test weights (conftest.diffusion_weights) and the data a
small synthetic dataset that `paintstep dataset synth` paints here. What is tested is what a
painter relies on: training lowers the loss, a run resumed from a checkpoint ends where an
uninterrupted one ends, the LoRA it writes is the one the engine loads by name and it changes
the engine's frames, and `accelerate launch` runs it on two processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import diffusion_weights, photo
from PIL import Image

pytest.importorskip("diffusers", reason="the diffusion extra is not installed")
torch = pytest.importorskip("torch")

from paintstep.cli import main  # noqa: E402

FAST = ["--frames", "8", "--workers", "0", "--shuffle", "0", "-q"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return diffusion_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two synthetic processes of 8 keyframes, 64 x 64."""
    root = tmp_path_factory.mktemp("data")
    pictures = root / "pictures"
    pictures.mkdir()
    for name in ("astronaut", "coffee"):
        picture = photo(name, 96)
        side = min(picture.shape[:2])
        Image.fromarray(picture[:side, :side]).save(pictures / f"{name}.png")
    args = ["dataset", "synth", str(pictures), "--out", str(root / "data"), "--size", "64"]
    assert main([*args, "--frames", "8", "-q"]) == 0
    return root / "data"


def train(data, weights, run_dir, *more) -> int:
    args = ["train-lora", str(data), "--weights", str(weights), "--run-dir", str(run_dir)]
    return main([*args, *FAST, *more])


@pytest.fixture(scope="module")
def trained(data, weights, tmp_path_factory):
    """A run of 4 steps, a checkpoint and validation samples every 2: its folder."""
    run_dir = tmp_path_factory.mktemp("run")
    more = ["--name", "trained", "--steps", "4", "--lr", "1e-2", "--checkpoint-every", "2"]
    more += ["--sample-every", "2", "--sample-steps", "2"]
    assert train(data, weights, run_dir, *more) == 0
    return run_dir


def lora_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(data, weights, tmp_path):
    from paintstep.training.loop import Run
    from paintstep.training.settings import TrainSettings

    settings = TrainSettings(
        data=[str(data)],
        name="fit",
        weights=weights,
        out=tmp_path / "fit.safetensors",
        run_dir=tmp_path / "run",
        frames=8,
        steps=15,
        learning_rate=1e-2,
        caption_dropout=0.0,
        sample_every=0,
        workers=0,
        shuffle=0,
        quiet=True,
    )
    run = Run(settings)
    batch = next(iter(run.batches()))
    run.epoch = run.taken = 0

    def fixed_loss() -> float:
        with torch.no_grad():
            draws = [torch.Generator().manual_seed(k) for k in range(4)]
            return sum(float(run.denoiser.loss(batch["frames"], [""], g)) for g in draws) / 4

    before = fixed_loss()
    run.train()
    assert fixed_loss() < 0.99 * before


@pytest.mark.slow
def test_the_run_writes_the_lora_checkpoints_and_samples(trained, weights):
    lora = weights.parent / "loras" / "trained.safetensors"  # the engine's loras folder
    tensors = lora_tensors(lora)
    assert tensors and all(key.startswith("unet.") for key in tensors)
    # ProcessPainter's choice: the motion module's temporal attention, rank 4.
    assert all(".motion_modules." in key for key in tensors)
    assert {key.rsplit(".", 3)[-3] for key in tensors} == {"to_q", "to_k", "to_v", "0"}
    assert all(min(t.shape) == 4 for t in tensors.values())
    steps = sorted(p.name for p in (trained / "checkpoints").iterdir())
    assert steps == ["step-000002", "step-000004"]
    for step in steps:
        sheet = Image.open(trained / "samples" / f"{step}.png")
        assert sheet.width > 8 * 32 and sheet.height > 2 * 32  # 8 frames, 2 processes
        gif = Image.open(trained / "samples" / f"{step}.gif")
        assert gif.n_frames > 1
    final = lora_tensors(trained / "checkpoints" / "step-000004" / "lora.safetensors")
    assert all(torch.equal(final[key], tensors[key]) for key in tensors)


@pytest.mark.slow
def test_resuming_from_a_checkpoint_ends_where_the_uninterrupted_run_ends(
    trained, data, weights, tmp_path
):
    run_dir = tmp_path / "again"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(
        trained / "checkpoints" / "step-000002", run_dir / "checkpoints" / "step-000002"
    )
    more = ["--name", "again", "--steps", "4", "--lr", "1e-2", "--checkpoint-every", "2"]
    more += ["--sample-every", "0", "--out", str(tmp_path / "again.safetensors")]
    assert train(data, weights, run_dir, *more, "--resume", "latest") == 0
    resumed = lora_tensors(tmp_path / "again.safetensors")
    straight = lora_tensors(weights.parent / "loras" / "trained.safetensors")
    earlier = lora_tensors(trained / "checkpoints" / "step-000002" / "lora.safetensors")
    assert resumed.keys() == straight.keys()
    assert any(not torch.equal(earlier[key], straight[key]) for key in straight)
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)
    for name in ("trainer-0.pt", "optimizer.bin"):
        mine = torch.load(run_dir / "checkpoints" / "step-000004" / name, weights_only=False)
        theirs = torch.load(trained / "checkpoints" / "step-000004" / name, weights_only=False)
        assert same(mine, theirs), name


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def painter(weights, monkeypatch):
    """The diffusion engine's last frame of a short process from a fixed canvas."""
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest, frames

    monkeypatch.setenv("PAINTSTEP_DIFFUSION_CONFIG", str(weights))
    engine = get_engine("diffusion")
    canvas = photo("astronaut", 64)

    def painted(**options) -> np.ndarray:
        fast = {"size": 32, "frames": 8, "sampling_steps": 3, **options}
        request = PaintRequest(canvas, steps=3, complete=True, options=fast)
        *_, last = frames(request.first_frame(), list(engine.paint(request)))
        return last.astype(int)

    return painted


@pytest.mark.slow
def test_the_engine_loads_the_trained_lora_by_name_and_it_changes_the_frames(
    trained, weights, monkeypatch
):
    painted = painter(weights, monkeypatch)
    plain = painted()
    styled = painted(lora="trained")
    assert np.abs(styled - plain).mean() > 0.5
    assert np.array_equal(painted(), plain)


@pytest.mark.slow
def test_a_control_net_lora_is_trained_and_the_engine_applies_it(
    trained, data, weights, tmp_path, monkeypatch
):
    more = ["--name", "held", "--train", "controlnet", "--steps", "2", "--lr", "1e-2"]
    assert train(data, weights, tmp_path / "run", *more, "--sample-every", "0") == 0
    tensors = lora_tensors(weights.parent / "loras" / "held.safetensors")
    assert tensors and all(key.startswith("controlnet.") for key in tensors)
    painted = painter(weights, monkeypatch)
    plain = painted()
    held = painted(lora="held")
    assert np.abs(held - plain).mean() > 0.5
    assert np.abs(painted(lora="held", lora_scale=0.2) - plain).mean() < np.abs(held - plain).mean()
    assert np.array_equal(painted(lora="trained"), painted(lora="trained"))
    assert np.array_equal(painted(), plain)  # neither applies any more


@pytest.mark.slow
def test_accelerate_launch_runs_two_processes_to_the_end(data, weights, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "two.safetensors"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "-m", "paintstep", "train-lora", str(data)]
    launch += ["--weights", str(weights), "--run-dir", str(run_dir), "--out", str(out)]
    launch += ["--name", "two", "--steps", "2", "--checkpoint-every", "2", "--sample-every", "0"]
    launch += ["--frames", "8", "--workers", "0", "--shuffle", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 2 process(es)" in done.stderr
    checkpoint = run_dir / "checkpoints" / "step-000002"
    assert (checkpoint / "trainer-0.pt").is_file() and (checkpoint / "trainer-1.pt").is_file()
    assert lora_tensors(out)


def test_held_frames_are_drawn_as_processpainter_draws_them():
    from paintstep.training.conditioning import held_frames

    generator = torch.Generator().manual_seed(0)
    draws = [held_frames(16, "random", generator) for _ in range(2000)]
    assert all(d == sorted(set(d)) and 1 <= len(d) <= 8 for d in draws)
    counts = np.bincount([i for d in draws for i in d], minlength=16)
    # The first and the last frame each a third of the weight; the middle in a bell.
    assert counts[0] > 1.5 * counts[1:15].max() and counts[15] > 1.5 * counts[1:15].max()
    assert counts[7] > 5 * counts[1] and counts[8] > 5 * counts[14]
    ends = [held_frames(16, "ends", generator) for _ in range(400)]
    assert all(d in ([0], [0, 15]) for d in ends) and 120 < sum(len(d) == 2 for d in ends) < 280


@pytest.mark.parametrize(
    "args, words",
    [
        (["--train", "motion,legs"], "--train takes motion, unet, controlnet"),
        (["--steps", "0"], "--steps must be 1 or more"),
        (["--frames", "40"], "--frames must be 2 to 24"),
        (["--resume", "latest"], "no checkpoint in"),
    ],
)
def test_bad_options_are_a_sentence_and_exit_code_2(data, weights, tmp_path, capsys, args, words):
    assert train(data, weights, tmp_path / "run", "--name", "x", *args) == 2
    error = capsys.readouterr().err
    assert words in error and error.startswith("paintstep: ")


def test_no_loras_folder_and_no_out_is_a_sentence(data, weights, tmp_path, capsys):
    import json

    entries = json.loads(weights.read_text())
    del entries["loras"]
    config = weights.parent / "no-loras.json"
    config.write_text(json.dumps(entries))
    assert train(data, config, tmp_path / "run", "--name", "x") == 2
    assert 'names no "loras" folder' in capsys.readouterr().err


@pytest.mark.slow
def test_a_batch_of_processes_of_different_sizes_is_a_sentence(weights, tmp_path, capsys):
    from paintstep.dataset.shards import Sample, ShardWriter

    with ShardWriter(tmp_path / "data", "mixed") as writer:
        for height in (64, 48):
            frames = [np.full((height, 64, 3), 30 * k, np.uint8) for k in range(8)]
            writer.write(Sample(f"h{height}", frames, ""))
    more = ["--name", "x", "--batch-size", "2", "--steps", "1", "--out", str(tmp_path / "x.st")]
    assert train(tmp_path / "data", weights, tmp_path / "run", *more) == 2
    assert "--batch-size 1" in capsys.readouterr().err

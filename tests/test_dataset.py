"""`paintstep dataset`: real processes read from recordings the tests make (a Krita Recorder
folder, numbered frames, a video), synthetic ones painted by the strokes engine, and the shards
read back."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from conftest import photo
from paintstep.cli import main
from paintstep.dataset.shards import read_samples
from PIL import Image

SIDE = 96


def revealed(picture: np.ndarray, share: float) -> np.ndarray:
    """`picture` (RGB) painted down to `share` of its rows, white paper below."""
    frame = np.full_like(picture, 255)
    rows = round(picture.shape[0] * share)
    frame[:rows] = picture[:rows]
    return frame


def save(path, rgb) -> None:
    Image.fromarray(rgb).save(path)


@pytest.fixture
def picture():
    return photo("astronaut", SIDE)[..., :3].copy()


def recorder(root, picture, shares, scaled_until=0, broken=()):
    """A Krita Recorder folder for one document: a frame per share of the picture painted,
    7-digit names from 0000001; the first `scaled_until` frames at a larger canvas (the image
    was scaled down after them)."""
    root.mkdir(parents=True)
    for number, share in enumerate(shares, 1):
        frame = revealed(picture, share)
        if number <= scaled_until:
            frame = np.asarray(Image.fromarray(frame).resize((150, 150), Image.Resampling.LANCZOS))
        path = root / f"{number:07d}.png"
        if number in broken:
            path.write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
        else:
            save(path, frame)
    return root


def build(source, out, *more, quiet: bool = True):
    command = ["dataset", "build", str(source), "--out", str(out), "--size", "64", *more]
    return main(command + ["-q"] * quiet)


def test_recorder_resized_midway_is_aligned_and_broken_frame_skipped(tmp_path, picture, capsys):
    shares = [0.0, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    root = recorder(tmp_path / "recorder" / "portrait", picture, shares, scaled_until=6, broken={5})
    (root / "caption.txt").write_text("an astronaut, oil\n")
    assert build(tmp_path / "recorder", tmp_path / "data", "--frames", "6", quiet=False) == 0
    assert "0000005.png" in capsys.readouterr().err  # named, and the rest went on

    [sample] = read_samples(tmp_path / "data")
    assert sample.key == "portrait" and sample.caption == "an astronaut, oil"
    meta = sample.meta
    assert meta["kind"] == "recorder" and meta["canvas"] == [SIDE, SIDE]
    assert {frame.shape for frame in sample.frames} == {(64, 64, 3)}
    assert len(sample.frames) == 6
    [resize] = meta["resized"]
    assert resize["size"] == [150, 150] and resize["how"] == "scaled"
    assert resize["from"] == "0000001.png" and resize["to"] == "0000006.png"
    assert resize["box"] == [0, 0, SIDE, SIDE]
    assert meta["dropped"]["blank"] == 1 and meta["dropped"]["duplicate"] == 2
    # The frames from before the resize line up with the later ones: each keyframe is its
    # recorded frame as it lies on the final canvas.
    names = [k["source"] for k in meta["keyframes"]]
    assert names[-1] == "0000013.png" and min(names) <= "0000003.png"
    for name, frame in zip(names, sample.frames):
        share = shares[int(name[:7]) - 1]
        expected = Image.fromarray(revealed(picture, share)).resize((64, 64), Image.LANCZOS)
        assert np.abs(frame.astype(int) - np.asarray(expected)).mean() < 4, name


def test_crop_is_found_as_a_move(tmp_path, picture):
    """The canvas was cropped: earlier frames are larger and show the final canvas at an
    offset, which the sample records as where the earlier canvas lay."""
    root = tmp_path / "rec" / "crop"
    root.mkdir(parents=True)
    big = np.full((SIDE + 30, SIDE + 20, 3), 255, np.uint8)
    for number, share in enumerate([0.25, 0.5, 0.75, 1.0], 1):
        frame = big.copy()
        frame[10 : 10 + SIDE, 12 : 12 + SIDE] = revealed(picture, share)
        frame[:8] = 40  # paint in the part that was cropped away
        if number == 4:
            frame = frame[10 : 10 + SIDE, 12 : 12 + SIDE]
        save(root / f"{number:07d}.png", frame)
    assert build(tmp_path / "rec", tmp_path / "data", "--frames", "4") == 0
    [sample] = read_samples(tmp_path / "data")
    [crop] = sample.meta["resized"]
    assert crop["how"] == "moved" and crop["size"] == [SIDE + 20, SIDE + 30]
    x, y, width, height = crop["box"]
    assert abs(x + 12) <= 1 and abs(y + 10) <= 1 and (width, height) == (SIDE + 20, SIDE + 30)


def test_keyframes_follow_visible_change_not_time(tmp_path, picture):
    """Most of the picture comes in the first four frames and the last twenty add a little
    each: keyframes spread by change sit mostly among the first frames."""
    shares = [0.2, 0.4, 0.6, 0.8] + [0.8 + 0.01 * k for k in range(1, 21)]
    frames = tmp_path / "frames"
    frames.mkdir()
    for number, share in enumerate(shares):
        save(frames / f"frame_{number}.png", revealed(picture, share))  # frame_10 after frame_9
    assert build(frames, tmp_path / "data", "--frames", "6") == 0
    [sample] = read_samples(tmp_path / "data")
    assert sample.meta["kind"] == "frames"
    numbers = [int(k["source"][6:-4]) for k in sample.meta["keyframes"]]
    assert numbers == sorted(numbers) and numbers[0] == 0 and numbers[-1] == 23
    assert sum(n <= 4 for n in numbers) >= 3  # evenly by time, two would be
    changes = [k["change"] for k in sample.meta["keyframes"]]
    assert changes[0] == 0 and changes[-1] == 1


def test_covered_frame_is_dropped(tmp_path, picture):
    """A dialog over the canvas in one frame, gone in the next: that frame is no keyframe."""
    frames = tmp_path / "frames"
    frames.mkdir()
    shares = [0.2, 0.35, 0.5, 0.5, 0.65, 0.8, 1.0]
    for number, share in enumerate(shares, 1):
        frame = revealed(picture, share)
        if number == 4:
            frame[60:90, 10:80] = (200, 200, 205)
        save(frames / f"{number:03d}.png", frame)
    assert build(frames, tmp_path / "data", "--frames", "8") == 0
    [sample] = read_samples(tmp_path / "data")
    assert sample.meta["dropped"]["covered"] == 1
    assert "004.png" not in [k["source"] for k in sample.meta["keyframes"]]
    assert len(sample.frames) == 6


def test_video(tmp_path, picture):
    path = tmp_path / "painting.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = SIDE, SIDE, "yuv420p"
        for number in range(30):
            frame = av.VideoFrame.from_ndarray(revealed(picture, (number + 1) / 30), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    path.with_suffix(".txt").write_text("a portrait")
    assert build(path, tmp_path / "data", "--frames", "5", "--video-fps", "5") == 0
    [sample] = read_samples(tmp_path / "data")
    assert sample.key == "painting" and sample.caption == "a portrait"
    assert sample.meta["kind"] == "video" and sample.meta["recorded_frames"] == 15
    assert len(sample.frames) == 5 and sample.frames[0].shape == (64, 64, 3)
    painted = [float((frame < 200).any(axis=2).mean()) for frame in sample.frames]
    assert painted == sorted(painted)


def pictures_folder(folder, count):
    (folder / "more").mkdir(parents=True)
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"]
    for i in range(count):
        place = folder / "more" if i % 2 else folder
        save(place / f"p{i}.png", photo(names[i % len(names)], 48)[..., :3].copy())
    return folder


def synth(pictures, out, *more):
    args = ["dataset", "synth", str(pictures), "--out", str(out), "--size", "64", "-q"]
    return main([*args, "--frames", "4", *more])


def test_synth_read_back_through_the_dataset(tmp_path):
    torch = pytest.importorskip("torch")
    from paintstep.dataset.torch_dataset import ProcessDataset

    pictures = pictures_folder(tmp_path / "pictures", 2)
    assert synth(pictures, tmp_path / "data", "--per-picture", "2") == 0
    items = list(ProcessDataset(tmp_path / "data"))
    assert len(items) == 4
    for item in items:
        frames = item["frames"]
        assert frames.shape[0] == 4 and frames.shape[1] == 3 and frames.dtype == torch.float32
        assert -1 <= frames.min() and frames.max() <= 1
        meta = item["meta"]
        assert meta["kind"] == "synth" and meta["engine"] == "strokes"
        picture = Image.open(pictures / meta["source"]).convert("RGB")
        goal = np.asarray(picture.resize(frames.shape[:1:-1], Image.Resampling.LANCZOS))
        last = ((frames[-1].permute(1, 2, 0).numpy() + 1) * 127.5).round()
        first = ((frames[0].permute(1, 2, 0).numpy() + 1) * 127.5).round()
        assert np.abs(last - goal).mean() < 8 < np.abs(first - goal).mean()
    variants = [(i["meta"]["steps"], i["meta"]["seed"]) for i in items]
    assert len(set(variants)) == 4  # each process painted its own way


def test_synth_varies_the_engines_process_styles():
    from paintstep.dataset.synth import variation
    from paintstep.engines import get_engine

    [style] = [o for o in get_engine("strokes").options if o.name == "style"]
    drawn = {variation(f"p{i}.png", 0, 0, 16, style.choices)["options"]["style"] for i in range(40)}
    assert drawn == set(style.choices)
    assert variation("a.png", 1, 0, 16) == variation("a.png", 1, 0, 16)


def test_shards_cover_every_picture_once(tmp_path):
    pictures = pictures_folder(tmp_path / "pictures", 5)
    out = tmp_path / "data"
    for part in range(3):
        assert synth(pictures, out, "--shard", f"{part}/3", "--frames", "2") == 0
    assert len(list(out.glob("synth-*.tar"))) == 3
    sources = sorted(s.meta["source"] for s in read_samples(out, frames=False))
    assert sources == ["more/p1.png", "more/p3.png", "p0.png", "p2.png", "p4.png"]
    # A part made again replaces its shards; its processes are painted as before.
    before = {s.key: s.meta for s in read_samples(out, frames=False)}
    assert synth(pictures, out, "--shard", "1/3", "--frames", "2") == 0
    assert {s.key: s.meta for s in read_samples(out, frames=False)} == before


def test_torch_dataset_deals_samples_to_ranks_and_subsets_frames(tmp_path, picture):
    pytest.importorskip("torch")
    from paintstep.dataset.shards import Sample, ShardWriter
    from paintstep.dataset.torch_dataset import ProcessDataset

    with ShardWriter(tmp_path / "data", "t", per_shard=3) as writer:
        for i in range(7):
            frames = [np.full((8, 8, 3), 10 * k, np.uint8) for k in range(6)]
            writer.write(Sample(f"s{i}", frames, f"caption {i}", {"kind": "test"}))
    assert len(writer.shards) == 3
    for world in (2, 4):  # fewer shards than readers, and more
        keys = [
            item["key"]
            for rank in range(world)
            for item in ProcessDataset(tmp_path / "data", rank=rank, world=world)
        ]
        assert sorted(keys) == [f"s{i}" for i in range(7)]
    items = list(ProcessDataset(tmp_path / "data", frames=4, shuffle=4, seed=1))
    assert sorted(item["key"] for item in items) == [f"s{i}" for i in range(7)]
    for item in items:
        levels = ((item["frames"][:, 0, 0, 0] + 1) * 127.5).round().tolist()
        assert levels[0] == 0 and levels[-1] == 50 and levels == sorted(set(levels))
    held = next(iter(ProcessDataset(tmp_path / "data", frames=8)))["frames"]
    assert held.shape[0] == 8 and (held[5:] == held[5]).all()  # the finished picture held


def test_batches_of_samples_with_different_metas_load(tmp_path):
    pytest.importorskip("torch")
    from paintstep.dataset.shards import Sample, ShardWriter
    from paintstep.dataset.torch_dataset import ProcessDataset, collate
    from torch.utils.data import DataLoader

    with ShardWriter(tmp_path / "data", "t", per_shard=4) as writer:
        frames = [np.full((8, 8, 3), 10 * k, np.uint8) for k in range(4)]
        writer.write(Sample("real", frames, "", {"resized": [[1, 2, 3, 4]], "keyframes": [0, 5]}))
        writer.write(Sample("synth", frames, "a cup", {"steps": 8, "seed": 3}))
    data = ProcessDataset(tmp_path / "data", frames=4)
    (batch,) = list(DataLoader(data, batch_size=2, collate_fn=collate))
    assert tuple(batch["frames"].shape) == (2, 4, 3, 8, 8)
    assert batch["key"] == ["real", "synth"] and batch["meta"][1]["seed"] == 3


def test_show_counts_and_contact_sheet(tmp_path, picture, capsys):
    for name in ("a", "b"):
        recorder(tmp_path / "rec" / name, picture, [0.0, 0.3, 0.6, 1.0])
    assert build(tmp_path / "rec", tmp_path / "data", "--frames", "3", "--caption", "oil") == 0
    capsys.readouterr()
    assert (
        main(["dataset", "show", str(tmp_path / "data"), "--sheet", str(tmp_path / "s.png")]) == 0
    )
    printed = capsys.readouterr().out
    assert "2 samples in 1 shard: 2 recorder" in printed
    assert "keyframes per sample: 3 (2 samples)" in printed
    assert "captioned: 2 of 2" in printed and "1 blank" not in printed and "2 blank" in printed
    sheet = Image.open(tmp_path / "s.png")
    assert sheet.width > 3 * 64 and sheet.height > 2 * 64
    # A build under another name adds its shards; one under the same name replaces its own.
    for name in ("more", "more", "real"):
        assert build(tmp_path / "rec" / "a", tmp_path / "data", "--name", name) == 0
    assert main(["dataset", "show", str(tmp_path / "data")]) == 0
    assert "2 samples in 2 shards: 2 recorder" in capsys.readouterr().out
    assert (tmp_path / "data" / "contact_sheet.png").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["build", "{tmp}/nowhere", "--out", "{tmp}/d"], "does not exist"),
        (["build", "{tmp}/empty", "--out", "{tmp}/d"], "holds no frames"),
        (["build", "{tmp}/note.txt", "--out", "{tmp}/d"], "is not a video"),
        (["build", "{tmp}/empty", "--out", "{tmp}/d", "--frames", "1"], "--frames is between"),
        (["synth", "{tmp}/empty", "--out", "{tmp}/d"], "holds no pictures"),
        (["synth", "{tmp}/empty", "--out", "{tmp}/d", "--shard", "3/3"], "--shard is I/N"),
        (["show", "{tmp}/empty"], "holds no dataset shards"),
    ],
)
def test_bad_input_is_a_sentence_and_exit_code_2(tmp_path, capsys, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "note.txt").write_text("hello")
    assert main(["dataset", *(a.format(tmp=tmp_path) for a in args)]) == 2
    error = capsys.readouterr().err
    assert words in error and error.startswith("paintstep: ")


def test_a_recording_of_broken_files_only_writes_nothing(tmp_path, picture, capsys):
    recorder(tmp_path / "rec" / "x", picture, [0.5, 1.0], broken={1, 2})
    assert build(tmp_path / "rec", tmp_path / "data") == 2
    error = capsys.readouterr().err
    assert "nothing was written" in error
    assert "skipped" not in error and error.count("\n") == 1  # --quiet: the error alone
    assert not list((tmp_path / "data").glob("*.tar"))


def test_default_path_imports_no_torch():
    code = (
        "import sys, paintstep, paintstep.cli, paintstep.model.strokes\n"
        "import paintstep.dataset.command, paintstep.dataset.real, paintstep.dataset.synth\n"
        "import paintstep.dataset.show\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []

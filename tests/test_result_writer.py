"""Writing a result folder: on a thread or inline, the same bytes; what is chosen; what is left
when writing stops early."""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import av
import numpy as np
import pytest
from conftest import photo
from paintstep.animation import AnimationFrames, GifStream, Mp4Stream, animation_frame, timing
from paintstep.engines import get_engine
from paintstep.process import PaintRequest, StepLayer, composite
from paintstep.result import CHECKPOINT_STEPS, OUTPUTS, ResultWriter, load_result, write_png
from paintstep.wire.errors import PaintError
from paintstep.writer_process import WriterProcess
from PIL import Image


@pytest.fixture(scope="module")
def painting():
    request = PaintRequest(photo("astronaut", 96), steps=10, seed=1)
    return request, list(get_engine("strokes").paint(request))


def write(folder, painting, **options):
    request, steps = painting
    info = {"engine": "strokes", "steps_planned": request.steps}
    writer = ResultWriter(folder, request.first_frame(), info, **options)
    for step in steps:
        writer.add(step)
    writer.finish()
    return folder


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("outputs", [None, ("gif",)])
def test_a_folder_written_on_a_thread_is_the_same_as_one_written_inline(
    tmp_path, painting, outputs
):
    inline = files(write(tmp_path / "inline", painting, outputs=outputs))
    threaded = files(write(tmp_path / "thread", painting, outputs=outputs, background=True))
    assert inline.keys() == threaded.keys()
    for name in inline:
        if name.suffix == ".mp4":
            # x264 on several threads may spend its bits a little differently from run to run;
            # what a viewer sees is the same pictures at the same moments.
            same_video(tmp_path / "inline" / name, tmp_path / "thread" / name)
        else:
            assert inline[name] == threaded[name], name


def write_in_process(folder, painting, outputs):
    request, steps = painting
    info = {"engine": "strokes", "steps_planned": request.steps}
    process = WriterProcess.start()
    try:
        writer = process.open(folder, request.first_frame(), info, outputs)
        for step in steps:
            writer.add(step)
        writer.finish()
    finally:
        process.close()
    return folder


@pytest.mark.parametrize("outputs", [OUTPUTS, ("thumbs",)])
def test_a_folder_written_by_the_writer_process_is_the_same_as_one_written_inline(
    tmp_path, painting, outputs, monkeypatch
):
    # `paintstep paint` writes in a process of its own, on the core the engine leaves free.
    monkeypatch.setenv("PAINTSTEP_THREADS", "2")
    inline = files(write(tmp_path / "inline", painting, outputs=outputs))
    apart = files(write_in_process(tmp_path / "process", painting, outputs))
    assert inline.keys() == apart.keys()
    for name in inline:
        if name.suffix == ".mp4":
            same_video(tmp_path / "inline" / name, tmp_path / "process" / name)
        else:
            assert inline[name] == apart[name], name


def test_the_writer_process_says_a_failed_write_and_records_the_failure(
    tmp_path, painting, monkeypatch
):
    monkeypatch.setenv("PAINTSTEP_THREADS", "2")
    request, steps = painting
    process = WriterProcess.start()
    try:
        writer = process.open(tmp_path / "o", request.first_frame(), {}, ("thumbs",))
        (tmp_path / "o" / "layers").rmdir()  # the next layer cannot be written
        with pytest.raises(PaintError, match="Cannot write the result into .* choose another"):
            for step in steps:
                writer.add(step)
                time.sleep(0.05)  # the child says it between steps
            writer.finish()
        writer.end("failed", "no layers folder")
    finally:
        process.close()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["state"] == "failed" and manifest["steps"] == []
    with pytest.raises(PaintError, match="is a file; choose a folder"):
        (tmp_path / "file").write_text("")
        other = WriterProcess.start()
        try:
            other.open(tmp_path / "file", request.first_frame(), {}, ())
        finally:
            other.close()


def test_a_writer_process_that_cannot_start_paintstep_leaves_the_writing_to_a_thread(
    tmp_path, monkeypatch, capsys
):
    from paintstep import writer_process
    from paintstep.cli import main

    monkeypatch.setenv("PAINTSTEP_THREADS", "2")
    broken = [sys.executable, "-c", "import sys; sys.exit(1)"]  # as a Python without Paintstep
    monkeypatch.setattr(writer_process, "child_command", lambda: broken)
    Image.fromarray(photo("coffee", 64)).save(tmp_path / "p.png")
    out = tmp_path / "o"
    assert main(["paint", str(tmp_path / "p.png"), "--steps", "4", "--out", str(out), "-q"]) == 0
    result = load_result(out)
    assert result.complete and len(result.steps) == 4 and (out / "process.gif").exists()


def test_a_command_killed_outright_leaves_its_folder_marked_interrupted(tmp_path):
    Image.fromarray(photo("coffee", 300)).save(tmp_path / "p.png")
    out = tmp_path / "o"
    command = [sys.executable, "-m", "paintstep", "paint", str(tmp_path / "p.png")]
    painting = subprocess.Popen(command + ["--steps", "400", "--out", str(out), "-q"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifest = out / "manifest.json"
        if manifest.exists() and len(json.loads(manifest.read_text())["steps"]) >= 2:
            break
        time.sleep(0.05)
    painting.kill()
    painting.wait(30)
    deadline = time.monotonic() + 30
    while load_result(out).state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # the writer's process sees its input close, and says so
    result = load_result(out)
    assert result.state == "interrupted" and not result.complete
    written = {str(path.relative_to(out)) for path in out.glob("*/*.png")}
    listed = {result.manifest["start"]}
    for entry in result.steps:
        listed |= {entry[key] for key in ("layer", "frame", "thumbnail") if key in entry}
    assert written <= listed  # (frames not written are rebuilt from the layers)
    assert all((out / entry["layer"]).exists() for entry in result.steps if entry["width"])


def test_a_lean_folder_keeps_its_last_frame_written_as_an_inline_writer_writes_it(
    tmp_path, painting
):
    # The server's job cache: a lean 4096 px folder had no frame but the first, and the viewer
    # opened it in 9.9 s, compositing every layer for the last frame.
    lean = files(write(tmp_path / "lean", painting, lean=True))
    inline = files(write(tmp_path / "inline", painting, outputs=("thumbs",)))
    frames = sorted(name.name for name in lean if name.parent.name == "frames")
    assert frames == ["frame_0000.png", "frame_0010.png"]
    checkpoints = {name for name in inline.keys() - lean.keys() if name.parent.name == "frames"}
    assert inline.keys() - lean.keys() == checkpoints  # every 8th frame, the lean folder skips
    assert all(lean[name] == inline[name] for name in lean)


def test_a_lean_folder_lists_a_step_once_its_layer_is_written_and_stops_cleanly(tmp_path, painting):
    request, steps = painting
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, lean=True)
    for step in steps[: CHECKPOINT_STEPS + 1]:
        writer.add(step)
        listed = json.loads((tmp_path / "o" / "manifest.json").read_text())["steps"]
        assert listed[-1]["index"] == step.index
        assert (tmp_path / "o" / listed[-1]["thumbnail"]).exists()
    writer.end("cancelled")
    result = load_result(tmp_path / "o")
    assert len(result.steps) == CHECKPOINT_STEPS + 1 and not list((tmp_path / "o").rglob("*.part"))
    frame = request.first_frame()
    for step in steps[: CHECKPOINT_STEPS + 1]:
        composite(frame, step)
    assert np.array_equal(result.frame(CHECKPOINT_STEPS + 1), frame)


def decoded(path):
    with av.open(str(path)) as video:
        return [(frame.pts, frame.to_ndarray(format="rgb24")) for frame in video.decode(video=0)]


def same_video(first, second):
    a, b = decoded(first), decoded(second)
    assert [pts for pts, _ in a] == [pts for pts, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert np.abs(x.astype(int) - y.astype(int)).mean() < 1.0


def test_frames_not_written_are_rebuilt_from_the_nearest_checkpoint(tmp_path, painting):
    request, steps = painting
    folder = write(tmp_path / "o", painting, outputs=("thumbs",), background=True)
    result = load_result(folder)
    assert result.complete and len(result.steps) == 10
    written = sorted(p.name for p in (folder / "frames").iterdir())
    assert written == ["frame_0000.png", f"frame_{CHECKPOINT_STEPS:04d}.png", "frame_0010.png"]
    assert not (folder / "process.gif").exists() and "gif" not in result.manifest
    frame = request.first_frame()
    for k, step in enumerate(steps, 1):
        composite(frame, step)
        assert np.array_equal(result.frame(k), frame)
    assert len(list((folder / "thumbs").iterdir())) == 10


@pytest.mark.parametrize("lean", [False, True])
def test_a_step_that_paints_nothing_lists_no_layer_file_and_reads_back_empty(
    tmp_path, painting, lean
):
    request, steps = painting
    nothing = StepLayer(4, 0, 0, np.zeros((0, 0, 4), np.uint8), steps[3].thumbnail, "shapes")
    process = [*steps[:3], nothing, *(replace(step, index=step.index + 1) for step in steps[3:])]
    folder = write(tmp_path / "o", (request, process), lean=lean)
    result = load_result(folder)
    entry = result.steps[3]
    assert entry["width"] == entry["height"] == 0 and "layer" not in entry
    assert entry["stage"] == "shapes"  # the rest of the step's record stays
    listed = {e[key] for e in result.steps for key in ("layer", "frame", "thumbnail") if key in e}
    on_disk = {str(path.relative_to(folder)) for path in folder.glob("layers/*.png")}
    assert on_disk == {e["layer"] for e in result.steps if "layer" in e} and on_disk <= listed
    assert result.layer(4).is_empty
    assert np.array_equal(result.frame(4), result.frame(3))
    frame = request.first_frame()
    for step in steps:
        composite(frame, step)
    assert np.array_equal(result.frame(len(process)), frame)


def test_thumbs_are_a_folder_only_when_asked_for(tmp_path, painting):
    folder = write(tmp_path / "o", painting, outputs=("frames", "gif"))
    assert sorted(path.name for path in folder.iterdir()) == [
        "frames",
        "layers",
        "manifest.json",
        "process.gif",
    ]
    assert "thumbnail" not in load_result(folder).steps[0]
    assert (write(tmp_path / "t", painting, outputs=("thumbs",)) / "thumbs").is_dir()


def test_a_failed_write_is_said_in_the_painting_thread(tmp_path, painting):
    request, steps = painting
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, background=True)
    (tmp_path / "o" / "layers").rmdir()  # the next layer cannot be written
    with pytest.raises(PaintError, match="Cannot write the result into .* choose another --out"):
        for step in steps:
            writer.add(step)
        writer.finish()
    writer.end("failed", "no layers folder")
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["state"] == "failed" and manifest["steps"] == []


def test_a_failed_write_at_the_end_is_said_too(tmp_path, painting, monkeypatch):
    request, steps = painting
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, background=True)
    for step in steps:
        writer.add(step)

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("paintstep.animation.GifStream.close", full_disk)
    with pytest.raises(PaintError, match=r"Cannot write the result into .* \(No space left"):
        writer.finish()
    assert writer.animations == []  # the MP4 was closed all the same
    writer.end("failed", "no space")
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["state"] == "failed" and not manifest["complete"]
    assert "gif" not in manifest and "mp4" not in manifest


def test_a_writer_ended_early_lists_only_the_steps_it_wrote(tmp_path, painting):
    request, steps = painting
    writer = ResultWriter(tmp_path / "o", request.first_frame(), {}, background=True)
    for step in steps[:5]:
        writer.add(step)
    writer.end("cancelled")
    result = load_result(tmp_path / "o")
    assert result.state == "cancelled" and not result.complete
    assert 1 <= len(result.steps) <= 5
    for k, entry in enumerate(result.steps, 1):
        assert entry["index"] == k and (tmp_path / "o" / entry["layer"]).exists()
    with Image.open(tmp_path / "o" / "process.gif") as gif:
        assert gif.n_frames == len(result.steps) + 1


def test_the_gif_stream_keeps_the_look_and_the_timing_and_merges_still_frames(tmp_path):
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (60, 80, 3), np.uint8)]
    for k in range(5):
        changed = pictures[-1].copy()
        if k != 2:  # the third new frame is the same as the one before
            changed[10 * k : 10 * k + 15, 5:40] = rng.integers(0, 256, (15, 35, 3), np.uint8)
        pictures.append(changed)
    gif = GifStream(tmp_path / "a.gif")
    for picture in pictures:
        gif.add(Image.fromarray(picture))
    gif.close()
    durations = timing(6)
    with Image.open(tmp_path / "a.gif") as read:
        assert read.n_frames == 5 and read.info["loop"] == 0
        shown = []
        for k in range(read.n_frames):
            read.seek(k)
            shown.append((np.asarray(read.convert("RGB")).astype(int), read.info["duration"]))
    for (frame, _), k in zip(shown, [0, 1, 2, 4, 5]):
        error = np.mean((frame - pictures[k]) ** 2)
        assert 10 * np.log10(255**2 / error) > 20  # random noise: the hardest case
    still = durations[2] + durations[3]
    assert [d for _, d in shown] == [durations[0], durations[1], still, *durations[4:]]


def test_the_mp4_stream_paces_frames_for_the_count_expected(tmp_path):
    video = Mp4Stream(tmp_path / "a.mp4", expected=4)
    for shade in (0, 80, 160, 240):
        video.add(Image.new("RGB", (33, 20), (shade, shade, shade)))
    video.close()
    with av.open(str(tmp_path / "a.mp4")) as read:
        stream = read.streams.video[0]
        assert (stream.width, stream.height) == (34, 20)
        moments = [float(frame.pts * frame.time_base) for frame in read.decode(stream)]
    step = timing(4)[0] / 1000
    assert moments == pytest.approx([0, step, 2 * step, 3 * step, 3 * step + 1.96], abs=0.002)


@pytest.mark.parametrize(
    "stop, width", [(signal.SIGINT, 160), (signal.SIGINT, 1100), (signal.SIGTERM, 1100)]
)
def test_ctrl_c_leaves_a_cancelled_folder_of_whole_steps(tmp_path, stop, width):
    # At 1100 px the layers are drawn with helper processes, which must say nothing either;
    # a plain kill stops it as Ctrl-C does.
    Image.fromarray(photo("coffee", width)).save(tmp_path / "p.png")
    out = tmp_path / "o"
    command = [sys.executable, "-m", "paintstep", "paint", str(tmp_path / "p.png")]
    painting = subprocess.Popen(
        command + ["--steps", "400", "--out", str(out), "-q"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        manifest = out / "manifest.json"
        if manifest.exists() and len(json.loads(manifest.read_text())["steps"]) >= 2:
            break
        time.sleep(0.05)
    painting.send_signal(stop)
    assert painting.wait(30) == 130
    said = painting.stderr.read()
    assert "incomplete result" in said and "Traceback" not in said
    result = load_result(out)
    assert result.state == "cancelled" and 2 <= len(result.steps) < 400
    for entry in result.steps:
        if entry["width"]:
            assert Image.open(out / entry["layer"]).size == (entry["width"], entry["height"])
    assert result.frame(len(result.steps)).shape == result.start().shape


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (33, 17)])
def test_pngs_read_back_as_the_pixels_written(tmp_path, shape):
    pixels = np.random.default_rng(3).integers(0, 256, (*shape, 4), np.uint8)
    write_png(tmp_path / "p.png", pixels[:, ::-1])  # not contiguous
    with Image.open(tmp_path / "p.png") as read:
        assert read.mode == "RGBA" and np.array_equal(np.asarray(read), pixels[:, ::-1])


@pytest.mark.parametrize("shape", [(1100, 1300), (3100, 1000), (500, 333), (1024, 1024)])
@pytest.mark.parametrize("opaque", [True, False])
def test_animation_frames_kept_a_region_at_a_time_look_like_whole_frames_reduced(shape, opaque):
    # The writer reduces only each step's box for the GIF and MP4 (60 % of a 1024 px frame on
    # average); what it shows is the whole frame reduced, step after step.
    rng = np.random.default_rng(sum(shape))
    height, width = shape
    frame = np.zeros((height, width, 4), np.uint8)
    frame[..., :3] = rng.integers(0, 256, (1, 1, 3))
    frame[..., 3] = 255 if opaque else 120
    frames = AnimationFrames(frame)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 1)), int(rng.integers(0, height - 1))
        x1, y1 = int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1))
        patch = rng.integers(0, 256, (y1 - y0, x1 - x0, 4), np.uint8)
        if opaque:
            patch[..., 3] = 255
        else:  # paint on a transparent canvas: a colour and an opacity a patch (noise in
            # both clips differently in premultiplied and flattened filtering, by up to 30)
            patch[...] = rng.integers(0, 256, 4)
        frame[y0:y1, x0:x1] = patch
        picture, near = frames.update(frame, x0, y0, x1, y1)
        whole = np.asarray(AnimationFrames(frame).image()).astype(int)
        assert picture.size == (whole.shape[1], whole.shape[0])
        assert np.abs(np.asarray(picture).astype(int) - whole).max() <= 3
        # As the whole frame on paper, filtered (transparent frames were filtered before they
        # were put on paper: across sharp changes of opacity the two ring differently).
        before = np.abs(np.asarray(animation_frame(frame)).astype(int) - whole)
        assert before.max() <= 3 if opaque else before.mean() < 0.5
        outside = np.ones(whole.shape[:2], bool)
        outside[near[1] : near[3], near[0] : near[2]] = False
        assert not outside.any() or np.abs(np.asarray(picture) - whole)[outside].max() <= 3

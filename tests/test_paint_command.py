"""`paintstep paint` as a person runs it: a real process, real files."""

import json
import struct
import subprocess
import sys
import zlib

import av
import numpy as np
import pytest
from conftest import half_finished, photo
from paintstep.cli import build_parser, main
from paintstep.process import StepLayer, composite
from paintstep.result import load_result
from PIL import Image


def save(path, rgba, mode=None):
    image = Image.fromarray(rgba, "RGBA")
    (image.convert(mode) if mode else image).save(path)
    return str(path)


def header_only_png(path, width: int, height: int) -> str:
    """A PNG that says it is width x height but holds no pixels: reading its size works,
    decoding it fails."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    data = chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + data)
    return str(path)


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "paintstep", *map(str, args)], capture_output=True, text=True
    )


def test_writes_layers_frames_and_animations_that_agree(tmp_path):
    target = photo("coffee", 120)
    start = save(tmp_path / "start.png", half_finished(target))
    goal = save(tmp_path / "target.png", target)
    out = tmp_path / "out"
    done = run("paint", start, "--target", goal, "--steps", 6, "--seed", 2, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Painted 6 steps" in done.stdout

    result = load_result(out)
    assert result.complete and len(result.steps) == 6
    frame = np.asarray(Image.open(start).convert("RGBA")).copy()
    assert np.array_equal(result.start(), frame)
    for k in range(1, 7):
        composite(frame, result.layer(k))
        assert np.array_equal(frame, result.frame(k))
    assert np.abs(frame.astype(int) - target).max() <= 4

    with Image.open(out / "process.gif") as gif:
        assert gif.n_frames == 7
    with av.open(str(out / "process.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) >= 7
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "strokes" and manifest["seed"] == 2


def test_layer_offsets_in_the_manifest_place_each_step(tmp_path):
    main(
        [
            "paint",
            save(tmp_path / "a.png", photo("astronaut", 96)),
            "--steps",
            "5",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    result = load_result(tmp_path / "out")
    for entry in result.steps:
        layer = Image.open(tmp_path / "out" / entry["layer"])
        assert layer.size == (entry["width"], entry["height"])
        assert 0 <= entry["x"] and entry["x"] + entry["width"] <= 96


def test_sample_paints_the_bundled_picture(tmp_path):
    assert main(["paint", "--sample", "--steps", "3", "--out", str(tmp_path / "o"), "-q"]) == 0
    assert load_result(tmp_path / "o").complete


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["paint", "--help"])
    text = capsys.readouterr().out
    paint = next(a for a in build_parser()._subparsers._actions if a.dest == "command")
    for action in paint.choices["paint"]._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help and action.help != "==SUPPRESS=="
    for word in ("START", "--target", "--steps", "--seed", "--mask", "--out", "thumbs/"):
        assert word in text
    assert "An earlier result in --out is replaced" in text


def test_every_command_has_a_description(capsys):
    commands = next(a for a in build_parser()._subparsers._actions if a.dest == "command")
    for name, parser in commands.choices.items():
        assert parser.description, f"paintstep {name} --help has no description"
    with pytest.raises(SystemExit):
        main(["engines", "--help"])
    assert "-o NAME=VALUE" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "I;16", "I", "PA"])
def test_grayscale_palette_sixteen_bit_and_alpha_pictures_are_painted(tmp_path, mode):
    picture = photo("chelsea", 64)
    if mode == "PA":
        picture[:, :20, 3] = 0
        path = tmp_path / "p.png"
        Image.fromarray(picture, "RGBA").convert("P").save(path, transparency=0)
    elif mode in ("I;16", "I"):
        gray = np.asarray(Image.fromarray(picture).convert("L")).astype(np.uint16) * 257
        path = tmp_path / ("p.png" if mode == "I;16" else "p.tif")
        Image.fromarray(gray if mode == "I;16" else gray.astype(np.int32)).save(path)
        with Image.open(path) as written:
            assert written.mode in ("I;16", "I")
    else:
        path = save(tmp_path / "p.png", picture, mode)
    out = tmp_path / "out"
    assert main(["paint", str(path), "--steps", "3", "--out", str(out), "-q"]) == 0
    assert load_result(out).complete


def test_a_target_of_another_size_is_resized_with_a_notice(tmp_path):
    start = save(tmp_path / "s.png", half_finished(photo("coffee", 90)))
    target = save(tmp_path / "t.png", photo("coffee", 120))
    done = run("paint", start, "--target", target, "--steps", 3, "--out", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    assert "resized it to 90 x 60 px" in done.stderr


def test_size_target_scales_the_canvas_up_to_the_target(tmp_path):
    start = save(tmp_path / "s.png", half_finished(photo("coffee", 90)))
    target = save(tmp_path / "t.png", photo("coffee", 120))
    out = tmp_path / "o"
    command = ["paint", start, "--target", target, "--size", "target", "--steps", 3]
    done = run(*command, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "The canvas is 90 x 60 px and the target 120 x 80 px; resized it to 120 x 80" in (
        done.stderr
    )
    result = load_result(out)
    assert result.frame(0).shape == (80, 120, 4)
    assert np.abs(result.frame(3).astype(int) - photo("coffee", 120)).max() <= 8


@pytest.mark.parametrize(
    "args, says",
    [
        (["missing.png"], "does not exist"),
        (["text.png"], "not a picture Paintstep can read"),
        (["ok.png", "--steps", "0"], "between 1 and 1000"),
        (["ok.png", "--steps", "10000"], "between 1 and 1000"),
        (["ok.png", "--mask", "black.png"], "mask is empty"),
        (["huge.png"], "scale it down"),
        (["ok.png", "--option", "detail=lots"], "must be a number"),
        (["ok.png", "--option", "detail=nan"], "must be a number"),
        (["ok.png", "--seed", "-1"], "0 or more"),
        (["ok.png", "--target", "ok.png", "--paper", "#fff"], "drop one"),
        (["ok.png", "--paper", "#12"], "Unknown paper"),
        (["ok.png", "--size", "target"], "give --target too"),
        (["ok.png", "--option", "detail"], "NAME=VALUE"),
        (["ok.png", "--out", "ok.png"], "is a file"),
        (["ok.png", "--outputs", "gif,png"], "--outputs takes frames, thumbs, gif, mp4"),
        (["ok.png", "--out", "busy"], "not a Paintstep result"),
        ([], "Give the picture to paint"),
    ],
)
def test_bad_input_gets_one_clear_sentence_and_leaves_nothing(tmp_path, args, says):
    save(tmp_path / "ok.png", photo("coffee", 60))
    (tmp_path / "text.png").write_text("not a picture")
    save(tmp_path / "black.png", np.full((40, 60, 4), [0, 0, 0, 255], np.uint8))
    Image.new("1", (40_000, 8)).save(tmp_path / "huge.png")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "paintstep", "paint", *args, "--out", "out"]
        if "--out" not in args
        else [sys.executable, "-m", "paintstep", "paint", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_picture_over_the_side_limit_is_said_too_large_before_it_is_decoded(tmp_path, capsys):
    out = str(tmp_path / "o")
    for width, height in ((20000, 20000), (30000, 30000), (9000, 40)):
        picture = header_only_png(tmp_path / f"{width}.png", width, height)
        assert main(["paint", picture, "--out", out]) == 2
        said = capsys.readouterr().err
        assert "too large" in said and "up to 8192 px per side" in said, said
    small = save(tmp_path / "small.png", photo("coffee", 60))
    assert main(["paint", small, "--out", out, "--max-side", "50"]) == 2
    assert "60 x 40 px, too large: Paintstep paints up to 50 px" in capsys.readouterr().err
    wide = str(tmp_path / "9000.png")
    assert main(["paint", wide, "--out", out, "--max-side", "9000"]) == 2
    assert "could not be read" in capsys.readouterr().err  # past the limit: decoded
    assert main(["paint", small, "--out", out, "--max-side", "20000"]) == 2
    assert "between 1 and 16384" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_with_a_server_its_side_limit_is_checked_before_the_picture_is_read(tmp_path, capsys):
    from test_server import ServerProcess

    server = ServerProcess(tmp_path, "--max-side", "64").start()
    try:
        picture = header_only_png(tmp_path / "p.png", 100, 80)
        command = ["paint", picture, "--server", server.address, "--out", str(tmp_path / "o")]
        assert main(command) == 2
        said = capsys.readouterr().err
        assert f"100 x 80 px, too large: the server at {server.address} takes up to 64 px" in said
    finally:
        server.stop()


def test_paper_takes_colour_names_as_well_as_hex(tmp_path):
    picture = save(tmp_path / "p.png", photo("coffee", 60))
    for paper, colour in (("black", [0, 0, 0, 255]), ("#f4ecd8", [244, 236, 216, 255])):
        out = tmp_path / paper.strip("#")
        command = ["paint", picture, "--paper", paper, "--steps", "2", "--out", str(out), "-q"]
        assert main(command) == 0
        assert np.all(load_result(out).frame(0) == colour)


def test_a_large_result_is_said_before_painting(tmp_path, capsys):
    picture = save(tmp_path / "p.png", photo("astronaut", 512))
    (tmp_path / "file").write_text("")
    assert main(["paint", picture, "--steps", "1000", "--out", str(tmp_path / "file")]) == 2
    said = capsys.readouterr().err
    assert "1000 steps of 512 x 512 px make a result of about" in said, said
    assert main(["paint", picture, "--steps", "16", "--out", str(tmp_path / "file")]) == 2
    assert "make a result of about" not in capsys.readouterr().err


def test_the_expected_size_of_a_result_is_near_what_is_written(tmp_path):
    from paintstep.cli.paint import DEFAULT_OUTPUTS, expected_bytes

    picture = save(tmp_path / "p.png", photo("astronaut", 160))
    out = tmp_path / "o"
    assert main(["paint", picture, "--steps", "48", "--out", str(out), "-q"]) == 0
    written = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    expected = expected_bytes(160, 160, 48, DEFAULT_OUTPUTS)
    assert expected / 3 < written < expected * 3, (written, expected)


def test_a_run_that_is_stopped_is_not_left_looking_complete(tmp_path):
    from paintstep.result import ResultWriter

    start = photo("coffee", 40)
    writer = ResultWriter(tmp_path / "o", start, {"engine": "strokes"})
    writer.add(StepLayer(1, 0, 0, start[:4, :4]), start)
    assert not load_result(tmp_path / "o").complete


def test_a_cancelled_run_leaves_no_step_files_beyond_its_manifest(tmp_path, monkeypatch):
    from paintstep import result
    from paintstep.engines import get_engine
    from paintstep.process import PaintRequest

    request = PaintRequest(photo("coffee", 60), steps=6)
    steps = list(get_engine("strokes").paint(request))
    out = tmp_path / "o"
    writer = result.ResultWriter(out, request.first_frame(), {}, outputs=("frames", "thumbs"))
    for step in steps[:2]:
        writer.add(step)
    write_png = result.write_png

    def cut_short(path, rgba):  # Ctrl-C after step 3's layer is written, before its thumbnail
        if path.name == "thumb_0003.png":
            raise KeyboardInterrupt
        write_png(path, rgba)

    monkeypatch.setattr(result, "write_png", cut_short)
    with pytest.raises(KeyboardInterrupt):
        writer.add(steps[2])
    writer.end("cancelled")
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {manifest["start"]}
    for entry in manifest["steps"]:
        listed |= {entry["layer"], entry["frame"], entry["thumbnail"]}
    written = {str(path.relative_to(out)) for path in out.glob("*/*.png")}
    assert len(manifest["steps"]) == 2 and written == listed


def test_painting_again_replaces_an_earlier_result(tmp_path):
    picture = save(tmp_path / "p.png", photo("coffee", 60))
    out = str(tmp_path / "o")
    assert main(["paint", picture, "--steps", "5", "--out", out, "-q"]) == 0
    assert main(["paint", picture, "--steps", "2", "--out", out, "-q"]) == 0
    assert len(load_result(out).steps) == 2
    assert len(list((tmp_path / "o" / "layers").iterdir())) == 2


@pytest.mark.parametrize(
    "outputs, written",
    [
        ("frames,thumbs,gif,mp4", {"frames": 10, "thumbs": 9, "process.gif": 1, "process.mp4": 1}),
        ("none", {"frames": 3}),  # frame 0, the checkpoint at step 8 and the last
        ("gif", {"frames": 3, "process.gif": 1}),
    ],
)
def test_outputs_choose_what_is_written_beyond_the_layers(tmp_path, outputs, written):
    picture = save(tmp_path / "p.png", photo("coffee", 60))
    out = tmp_path / "o"
    assert main(["paint", picture, "--steps", "9", "--out", str(out), "--outputs", outputs]) == 0
    result = load_result(out)
    assert result.complete and len(list((out / "layers").iterdir())) <= 9
    for name in ("frames", "thumbs"):  # a folder only where something goes in it
        found = len(list((out / name).iterdir())) if (out / name).exists() else None
        assert found == written.get(name)
    for name in ("process.gif", "process.mp4"):
        assert (out / name).exists() == (name in written)
    for k in range(10):
        assert result.frame(k).shape == (40, 60, 4)


def test_a_folder_left_by_a_stop_before_the_first_step_can_be_painted_into(tmp_path):
    # Stopped while the writer made its folders, a run left frames/ layers/ thumbs/ and no
    # manifest; the same command again was refused as someone else's folder.
    Image.fromarray(photo("coffee", 64)).save(tmp_path / "p.png")
    out = tmp_path / "o"
    for name in ("frames", "layers", "thumbs"):
        (out / name).mkdir(parents=True)
    assert main(["paint", str(tmp_path / "p.png"), "--steps", "3", "--out", str(out), "-q"]) == 0
    assert load_result(out).complete


def test_a_folder_of_someone_elses_under_paintsteps_names_is_still_refused(tmp_path):
    Image.fromarray(photo("coffee", 64)).save(tmp_path / "p.png")
    out = tmp_path / "o"
    (out / "layers").mkdir(parents=True)
    (out / "layers" / "my_sketch.kra").write_bytes(b"mine")
    assert main(["paint", str(tmp_path / "p.png"), "--steps", "3", "--out", str(out), "-q"]) == 2
    assert (out / "layers" / "my_sketch.kra").read_bytes() == b"mine"

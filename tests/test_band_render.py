"""Drawing a step's strokes on several processes, and wide brushes on a reduced surface: the
same pixels (or, reduced, the same picture), and nothing lost when a helper process dies."""

import os
import subprocess
import sys

import numpy as np
import pytest
from paintstep.model import band_render
from paintstep.model.brush import Strokes, render_layer
from paintstep.process import premultiplied


def strokes(count, radius, side, seed=0):
    rng = np.random.default_rng(seed)
    heading = np.cumsum(rng.normal(0, 0.3, (count, 12)), axis=1) + rng.uniform(0, 6.3, (count, 1))
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=2) * radius
    points = np.cumsum(steps, axis=1) + rng.uniform(0, side, (count, 1, 2))
    colour = rng.uniform(0, 1, (count, 4)).astype(np.float32)
    return Strokes(
        points.astype(np.float32),
        rng.integers(1, 13, count),
        colour,
        np.full(count, radius, np.float32),
    )


@pytest.fixture
def large(monkeypatch):
    """Any layer counts as large: drawn in bands."""
    monkeypatch.setattr(band_render, "PARALLEL_AREA", 0)


def one_process(monkeypatch, batch, *window):
    monkeypatch.setenv("PAINTSTEP_THREADS", "1")
    layer = band_render.render_layer(batch, *window)
    monkeypatch.setenv("PAINTSTEP_THREADS", "3")  # two helpers beside this process
    return layer


@pytest.mark.parametrize("radius", [1.0, 3.0, 9.0, 40.0])
def test_bands_drawn_on_helper_processes_are_the_pixels_one_process_draws(
    monkeypatch, large, radius, helpers_fail_freely
):
    batch = strokes(1500 if radius < 20 else 80, radius, 600, seed=int(radius))
    alone = one_process(monkeypatch, batch, 13, 7, 580, 590)
    shared = band_render.render_layer(batch, 13, 7, 580, 590)
    assert band_render._helpers, "no helper drew a band"
    assert np.array_equal(alone, shared)


@pytest.mark.parametrize("radius", [3.0, 40.0])
def test_a_layer_drawn_in_bands_looks_as_one_drawn_whole(large, radius):
    batch = strokes(1500 if radius < 20 else 80, radius, 600, seed=5)
    whole = premultiplied(render_layer(batch, 0, 0, 600, 600)).astype(int)
    banded = premultiplied(band_render.render_layer(batch, 0, 0, 600, 600)).astype(int)
    difference = np.abs(whole - banded).max(axis=2)
    assert difference.mean() < 0.05 and np.mean(difference > 8) < 0.002


@pytest.fixture
def helpers_fail_freely(monkeypatch):
    """Each test starts with no failures counted, so that helpers may be tried again."""
    monkeypatch.setattr(band_render, "_failures", 0)


def test_a_helper_that_dies_while_drawing_loses_no_step(monkeypatch, large, helpers_fail_freely):
    batch = strokes(800, 4.0, 400)
    alone = one_process(monkeypatch, batch, 0, 0, 400, 400)
    draw = band_render._draw_bands
    killed = []

    def kill_then_draw(*args):
        if not killed and band_render._helpers:  # this process's own bands, helpers at work
            for helper in band_render._helpers:
                helper.kill()
            killed.append(True)
        draw(*args)

    monkeypatch.setattr(band_render, "_draw_bands", kill_then_draw)
    assert np.array_equal(band_render.render_layer(batch, 0, 0, 400, 400), alone)
    assert killed
    monkeypatch.setattr(band_render, "_draw_bands", draw)
    # and the next step gets fresh helpers
    assert np.array_equal(band_render.render_layer(batch, 0, 0, 400, 400), alone)
    assert band_render._helpers and all(h.poll() is None for h in band_render._helpers)


def test_an_interrupted_drawing_leaves_the_next_one_right(monkeypatch, large, helpers_fail_freely):
    # Answers left unread by an interrupt would be read as the next layer's: wrong pixels.
    batch = strokes(800, 4.0, 400)
    alone = one_process(monkeypatch, batch, 0, 0, 400, 400)
    draw = band_render._draw_bands

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(band_render, "_draw_bands", interrupted)
    with pytest.raises(KeyboardInterrupt):
        band_render.render_layer(batch, 0, 0, 400, 400)
    monkeypatch.setattr(band_render, "_draw_bands", draw)
    for _ in range(3):
        assert np.array_equal(band_render.render_layer(batch, 0, 0, 400, 400), alone)


def test_helpers_stay_from_one_layer_to_the_next(monkeypatch, large, helpers_fail_freely):
    monkeypatch.setenv("PAINTSTEP_THREADS", "4")
    band_render.render_layer(strokes(600, 3.0, 400), 0, 0, 400, 400)
    started = [helper.pid for helper in band_render._helpers]
    band_render.render_layer(strokes(3, 60.0, 400), 0, 0, 400, 400)  # fewer bands
    band_render.render_layer(strokes(600, 3.0, 400, seed=1), 0, 0, 400, 400)
    assert started and [helper.pid for helper in band_render._helpers] == started


def test_no_room_for_the_layer_file_means_this_process_draws_it(
    monkeypatch, large, helpers_fail_freely
):
    batch = strokes(500, 4.0, 300)
    alone = one_process(monkeypatch, batch, 0, 0, 300, 300)
    band_render.release()

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(band_render.os, "posix_fallocate", full, raising=False)
    monkeypatch.setattr(band_render.os, "ftruncate", full)
    assert np.array_equal(band_render.render_layer(batch, 0, 0, 300, 300), alone)


def test_one_process_draws_in_its_own_memory(monkeypatch, large):
    band_render.release()
    monkeypatch.setenv("PAINTSTEP_THREADS", "1")
    assert band_render.render_layer(strokes(300, 4.0, 300), 0, 0, 300, 300)[..., 3].any()
    assert not band_render._shared.path and not band_render._helpers


def test_a_script_without_a_main_guard_is_not_run_again_by_the_helpers(tmp_path):
    # The helpers are plain processes, not multiprocessing's, which would import the
    # calling script again (and paint again) in each of them.
    script = tmp_path / "paint_once.py"
    script.write_text(
        "import numpy as np\n"
        "from paintstep.engines import get_engine\n"
        "from paintstep.process import PaintRequest\n"
        "rng = np.random.default_rng(0)\n"
        "cells = rng.integers(0, 256, (33, 33, 4), np.uint8)\n"
        "picture = np.repeat(np.repeat(cells, 32, 0), 32, 1)\n"
        "picture[..., 3] = 255\n"
        "steps = list(get_engine('strokes').paint(PaintRequest(picture, steps=4, seed=0)))\n"
        "print('painted', len(steps))\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n").count("painted 4") == 1


def test_the_layer_file_leaves_nothing_behind_once_the_helpers_have_it(
    monkeypatch, large, helpers_fail_freely
):
    monkeypatch.setenv("PAINTSTEP_THREADS", "2")
    band_render.render_layer(strokes(300, 4.0, 300), 0, 0, 300, 300)
    assert band_render._helpers
    # Mapped by all, its name is gone: a kill -9 of every process leaves no file in /dev/shm.
    assert band_render._shared.path and not band_render._shared.named
    assert not os.path.exists(band_render._shared.path)
    assert band_render.render_layer(strokes(300, 4.0, 300), 0, 0, 300, 300)[..., 3].any()


def test_no_helper_that_can_start_means_one_process_draws_it_all(
    monkeypatch, large, helpers_fail_freely
):
    batch = strokes(500, 4.0, 300)
    alone = one_process(monkeypatch, batch, 0, 0, 300, 300)
    band_render._stop_helpers()

    def refuse(*args, **kwargs):
        raise OSError("no processes left")

    monkeypatch.setattr(band_render.subprocess, "Popen", refuse)
    assert np.array_equal(band_render.render_layer(batch, 0, 0, 300, 300), alone)


def test_a_new_layer_file_has_no_name_by_the_time_anything_is_drawn(
    monkeypatch, large, helpers_fail_freely
):
    # A kill -9 of every process at any moment of drawing leaves nothing in /dev/shm.
    band_render.release()
    monkeypatch.setenv("PAINTSTEP_THREADS", "2")
    seen = []
    draw = band_render._draw_bands

    def note_then_draw(*args):
        seen.append((band_render._shared.named, os.path.exists(band_render._shared.path)))
        draw(*args)

    monkeypatch.setattr(band_render, "_draw_bands", note_then_draw)
    band_render.render_layer(strokes(300, 4.0, 300), 0, 0, 300, 300)
    assert seen == [(False, False)]

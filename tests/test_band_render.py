"""Drawing a step's strokes on several processes, and wide brushes on a reduced surface: the
same pixels (or, reduced, the same picture), and nothing lost when a helper process dies."""

import subprocess
import sys

import numpy as np
import pytest
from paintstep.model import band_render
from paintstep.model.brush import Strokes, premultiply, render_layer


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
def on_helpers(monkeypatch):
    """Any layer is drawn on two helper processes beside this one."""
    monkeypatch.setenv("PAINTSTEP_THREADS", "3")
    monkeypatch.setattr(band_render, "PARALLEL_AREA", 0)
    monkeypatch.setattr(band_render, "PARALLEL_STROKES", 0)


@pytest.mark.parametrize("radius", [1.0, 3.0, 9.0, 20.0])
def test_strokes_drawn_in_bands_on_helper_processes_are_the_same_pixels(on_helpers, radius):
    batch = strokes(1500, radius, 600, seed=int(radius))
    alone = render_layer(batch, 13, 7, 580, 590)
    banded = band_render.render_layer(batch, 13, 7, 580, 590)
    assert band_render._helpers, "the helpers drew nothing"
    assert np.array_equal(alone, banded)


def test_a_helper_that_dies_loses_no_step(on_helpers):
    batch = strokes(800, 4.0, 400)
    band_render.render_layer(batch, 0, 0, 400, 400)
    for helper in band_render._helpers:
        helper.kill()
        helper.wait()
    assert np.array_equal(
        band_render.render_layer(batch, 0, 0, 400, 400), render_layer(batch, 0, 0, 400, 400)
    )
    # and the next step gets fresh helpers
    assert np.array_equal(
        band_render.render_layer(batch, 0, 0, 400, 400), render_layer(batch, 0, 0, 400, 400)
    )
    assert all(helper.poll() is None for helper in band_render._helpers)


def test_wide_brushes_drawn_reduced_look_as_drawn_at_full_size():
    batch = strokes(60, 64.0, 1500)
    full = premultiply(render_layer(batch, 0, 0, 1500, 1500)).astype(int)
    reduced = premultiply(band_render.render_layer(batch, 0, 0, 1500, 1500)).astype(int)
    difference = np.abs(full - reduced).max(axis=2)
    assert difference.mean() < 0.5  # the same picture
    assert np.mean(difference > 16) < 0.002  # soft only along the edges


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

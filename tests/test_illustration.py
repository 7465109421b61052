"""The illustrator's process: sketch, lines, flats, shading, details, finish."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import painted, photo
from drawings import drawing
from paintstep.engines import get_engine
from paintstep.model.illustration import STAGES, luminance, stage_counts, strong_edges
from paintstep.process import PaintError, PaintRequest, frames
from paintstep.quality import detail_error, structure_error
from starts import make_start

ILLUSTRATION = {"style": "illustration"}


def process(request):
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    return layers, [start, *frames(start, layers)]


@pytest.mark.parametrize("make", [lambda: photo("coffee", 160), drawing], ids=["photo", "drawing"])
def test_the_stages_come_in_the_illustrators_order_and_end_on_the_picture(make):
    target = make()
    layers, shown = process(PaintRequest(target, steps=14, seed=1, options=ILLUSTRATION))
    stages = [layer.stage for layer in layers]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == list(STAGES)
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


def test_sketch_and_lines_go_along_the_pictures_strong_edges():
    target = photo("astronaut", 192)
    layers, shown = process(PaintRequest(target, steps=14, seed=0, options=ILLUSTRATION))
    edges, _ = strong_edges(luminance(target), 192 / 512)
    near = edges.copy()
    for _ in range(2):  # within 2 px
        near |= (
            np.roll(near, 1, 0) | np.roll(near, -1, 0) | np.roll(near, 1, 1) | np.roll(near, -1, 1)
        )
    for k, layer in enumerate(layers, 1):
        if layer.stage in ("sketch", "lines"):
            changed = np.any(shown[k] != shown[k - 1], axis=2)
            assert changed.any() and near[changed].mean() >= 0.7, (k, layer.stage)


def test_after_the_flats_the_large_shapes_are_there_but_not_the_detail():
    target = photo("coffee", 192)
    layers, shown = process(PaintRequest(target, steps=14, seed=0, options=ILLUSTRATION))
    last_flat = max(k for k, layer in enumerate(layers, 1) if layer.stage == "flats")
    start = shown[0]
    gone = 1 - structure_error(shown[last_flat], target) / structure_error(start, target)
    left = detail_error(shown[last_flat], target) / detail_error(start, target)
    assert gone >= 0.7 and left >= 0.5


def test_a_started_canvas_keeps_its_finished_parts_in_the_illustration_style():
    target = photo("astronaut", 160)
    start = make_start("holes", target, seed=1)
    _, shown = process(PaintRequest(start, target, steps=10, seed=1, options=ILLUSTRATION))
    finished = np.all(start == target, axis=2)
    assert np.array_equal(shown[-1][finished], start[finished])
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 6, 40])
def test_any_number_of_steps_gets_its_stages_finish_last(steps):
    counts = stage_counts(steps)
    assert sum(counts.values()) == steps and counts["finish"] >= 1
    if steps >= len(STAGES):
        assert all(counts[stage] >= 1 for stage in STAGES)
    target = photo("coffee", 64)
    layers, shown = process(PaintRequest(target, steps=steps, seed=0, options=ILLUSTRATION))
    assert len(layers) == steps and layers[-1].stage == "finish"
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


def test_an_unknown_style_is_refused_with_the_styles_there_are():
    with pytest.raises(PaintError, match="paint, illustration"):
        list(get_engine("strokes").paint(PaintRequest(photo("coffee", 32), options={"style": "x"})))


def test_each_steps_stage_is_in_the_manifest_and_in_the_servers_step_message(tmp_path):
    from paintstep.result import load_result
    from paintstep.serve.jobs import Job

    result = load_result(painted(tmp_path, "coffee", 96, 8, "--option", "style=illustration"))
    stages = [result.layer(k).stage for k in range(1, 9)]
    assert stages[0] == "sketch" and stages[-1] == "finish" and "flats" in stages
    step = replace(result.layer(3), thumbnail=result.thumbnail(3))
    assert Job("j1", tmp_path, steps=8).step_message(step).content["stage"] == stages[2]
    # A step without a stage says none (older results and engines).
    assert "stage" not in Job("j2", tmp_path).step_message(replace(step, stage=None)).content


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (2, 2), (3, 40)])
def test_thin_and_tiny_pictures_are_illustrated(shape):
    target = np.zeros((*shape, 4), np.uint8)
    target[..., 0] = np.linspace(0, 255, shape[1])[None, :]
    target[..., 3] = 255
    layers, shown = process(PaintRequest(target, steps=8, seed=0, options=ILLUSTRATION))
    assert len(layers) == 8 and np.abs(shown[-1].astype(int) - target).max() <= 4


def test_a_shade_takes_its_colour_from_its_own_pixels_only():
    from paintstep.model.illustration import local_colours

    # Label 0 (a shadow) on the left, unlabelled (-1, not shaded) pixels on the right: the
    # shadow's colour is the mean of its own pixels, not pulled towards the unshaded ones.
    goal = np.zeros((40, 40, 4), np.uint8)
    goal[:, :20, :3], goal[:, 20:, :3], goal[..., 3] = 40, 220, 255
    labels = np.full((40, 40), -1)
    labels[:, :20] = 0
    colours = local_colours(goal, labels, np.array([[40.0, 40.0, 40.0]]))
    assert np.abs(colours[:, :20].astype(int) - 40).max() <= 1


def test_a_larger_copy_of_a_picture_has_the_same_strong_edges():
    # The lines of a 4096 px picture were all but lost: its edges are as strong, spread over
    # more pixels, and fell under a floor set in levels a pixel.
    from PIL import Image

    small = photo("astronaut", 256)
    big = np.asarray(Image.fromarray(small).resize((2048, 2048), Image.Resampling.BICUBIC))
    share_small = strong_edges(luminance(small), 256 / 512)[0].mean()
    share_big = strong_edges(luminance(big), 2048 / 512)[0].mean()
    assert share_big >= 0.7 * share_small


def test_with_fewer_steps_than_stages_the_finish_flats_and_lines_are_kept_as_the_readme_says():
    kept = {steps: [s for s, n in stage_counts(steps).items() if n] for steps in (1, 2, 3, 6)}
    assert kept[1] == ["finish"] and kept[2] == ["flats", "finish"]
    assert kept[3] == ["lines", "flats", "finish"] and kept[6] == list(STAGES)

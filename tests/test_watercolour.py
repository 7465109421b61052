"""The watercolourist's process: washes from light to dark over kept whites, details, finish."""

import numpy as np
import pytest
from conftest import photo
from drawings import drawing, poster
from paintstep.engines import get_engine
from paintstep.model.watercolour import STAGES, WHITE, stage_counts
from paintstep.process import PaintRequest, frames
from paintstep.quality import luminance, stage_runs, wash_luminance
from starts import make_start

WATERCOLOUR = {"style": "watercolour"}


def process(request):
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    return layers, [start, *frames(start, layers)]


PICTURES = {
    "coffee": lambda: photo("coffee", 160),
    "astronaut": lambda: photo("astronaut", 128),
    "drawing": drawing,
    "poster": poster,
}


@pytest.mark.parametrize("name", PICTURES)
def test_washes_go_from_light_to_dark_then_details_and_the_finish_end_on_the_picture(name):
    target = PICTURES[name]()
    layers, shown = process(PaintRequest(target, steps=14, seed=1, options=WATERCOLOUR))
    stages = [layer.stage for layer in layers]
    assert stage_runs(stages) == list(STAGES)
    light = wash_luminance(shown, stages)
    assert len(light) == stage_counts(14)["washes"] + 1
    assert all(later < earlier for earlier, later in zip(light, light[1:])), light
    for k, stage in enumerate(stages, 1):
        if stage in ("washes", "details"):  # glazed pigment: no pixel gets lighter
            assert (luminance(shown[k]) <= luminance(shown[k - 1]) + 0.5).all(), k
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


def test_the_first_wash_covers_most_of_the_picture_and_the_last_only_its_darks():
    target = photo("coffee", 160)
    layers, shown = process(PaintRequest(target, steps=14, seed=0, options=WATERCOLOUR))
    washes = [k for k, layer in enumerate(layers, 1) if layer.stage == "washes"]
    touched = [np.any(shown[k] != shown[k - 1], axis=2).mean() for k in washes]
    assert touched[0] > 0.6 and touched[-1] < 0.5 * touched[0], touched
    # The last wash goes where the picture is dark.
    last = np.any(shown[washes[-1]] != shown[washes[-1] - 1], axis=2)
    assert luminance(target)[last].mean() < 0.7 * luminance(target).mean()


def test_the_whites_stay_paper_until_the_finish():
    target = poster()
    layers, shown = process(PaintRequest(target, steps=12, seed=0, options=WATERCOLOUR))
    whites = (255 - target[..., :3].astype(int)).max(axis=2) <= WHITE
    assert whites.mean() > 0.02
    last_detail = max(k for k, layer in enumerate(layers, 1) if layer.stage == "details")
    assert (shown[last_detail][whites] == 255).all()


def test_a_wash_pools_darker_at_its_edge_and_granulates_with_the_seed():
    # A flat grey disc on white: the first wash is darker just inside its edge than in the
    # middle (a wet edge), and its grain differs from one seed to another.
    size = 160
    yy, xx = np.mgrid[:size, :size]
    target = np.full((size, size, 4), 255, np.uint8)
    disc = np.hypot(xx - size / 2, yy - size / 2) < size * 0.35
    target[disc, :3] = (90, 110, 150)
    first = {}
    for seed in (0, 1):
        _, shown = process(PaintRequest(target, steps=10, seed=seed, options=WATERCOLOUR))
        first[seed] = luminance(shown[1])
    radius = np.hypot(xx - size / 2, yy - size / 2)
    rim = (radius > size * 0.35 - 2.5) & (radius < size * 0.35 - 0.5)
    middle = radius < size * 0.2
    assert first[0][rim].mean() < first[0][middle].mean() - 3
    assert np.abs(first[0] - first[1])[middle].mean() > 0.5  # the grain is the seed's


def test_the_same_seed_paints_the_same_watercolour():
    target = photo("coffee", 96)
    runs = [process(PaintRequest(target, steps=9, seed=5, options=WATERCOLOUR))[1] for _ in "ab"]
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("kind", ["holes", "blocks"])
def test_a_started_canvas_keeps_its_finished_parts_in_watercolour(kind):
    target = photo("astronaut", 160)
    start = make_start(kind, target, seed=1)
    _, shown = process(PaintRequest(start, target, steps=10, seed=1, options=WATERCOLOUR))
    finished = np.all(start == target, axis=2)
    assert np.array_equal(shown[-1][finished], start[finished])
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


def test_a_mask_keeps_the_watercolour_inside_it():
    target = photo("coffee", 96)
    mask = np.zeros(target.shape[:2], bool)
    mask[:, :48] = True
    start = np.full_like(target, 255)
    request = PaintRequest(start, target, mask=mask, steps=8, seed=0, options=WATERCOLOUR)
    _, shown = process(request)
    assert (shown[-1][~mask] == 255).all()
    assert np.abs(shown[-1][mask].astype(int) - target[mask]).max() <= 4


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 16, 40])
def test_any_number_of_steps_gets_its_stages_finish_last(steps):
    counts = stage_counts(steps)
    assert sum(counts.values()) == steps and counts["finish"] >= 1
    if steps >= len(STAGES):
        assert all(counts[stage] >= 1 for stage in STAGES)
    target = photo("coffee", 64)
    layers, shown = process(PaintRequest(target, steps=steps, seed=0, options=WATERCOLOUR))
    assert len(layers) == steps and layers[-1].stage == "finish"
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (2, 2), (3, 40)])
def test_thin_and_tiny_pictures_are_painted_in_watercolour(shape):
    target = np.zeros((*shape, 4), np.uint8)
    target[..., 0] = np.linspace(0, 255, shape[1])[None, :]
    target[..., 3] = 255
    layers, shown = process(PaintRequest(target, steps=8, seed=0, options=WATERCOLOUR))
    assert len(layers) == 8 and np.abs(shown[-1].astype(int) - target).max() <= 4

"""The pencil drawing's process: hatching along the forms, cross-hatching, colour, details."""

import numpy as np
import pytest
from conftest import photo
from drawings import drawing, poster
from paintstep.engines import get_engine
from paintstep.model.pencil import STAGES, grey, stage_counts
from paintstep.process import PaintError, PaintRequest, frames
from paintstep.quality import hatch_angle, luminance, stage_runs
from starts import make_start

PENCIL = {"style": "pencil"}
GREYS = {"style": "pencil", "colour": "false"}


def process(request):
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    return layers, [start, *frames(start, layers)]


def chroma(frame):
    rgb = frame[..., :3].astype(int)
    return rgb.max(axis=2) - rgb.min(axis=2)


PICTURES = {
    "astronaut": lambda: photo("astronaut", 192),
    "coffee": lambda: photo("coffee", 160),
    "drawing": drawing,
    "poster": poster,
}


@pytest.mark.parametrize("name", PICTURES)
def test_the_stages_come_in_the_draughtsmans_order_and_end_on_the_picture(name):
    target = PICTURES[name]()
    layers, shown = process(PaintRequest(target, steps=16, seed=1, options=PENCIL))
    assert stage_runs([layer.stage for layer in layers]) == list(STAGES)
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


@pytest.mark.parametrize("name", ["astronaut", "drawing"])
def test_hatching_follows_the_forms_and_cross_hatching_goes_across_it(name):
    target = PICTURES[name]()
    layers, shown = process(PaintRequest(target, steps=16, seed=0, options=PENCIL))
    angle = {"hatching": [], "cross-hatching": []}
    for k, layer in enumerate(layers, 1):
        if layer.stage in angle and (layer.stage != "hatching" or k <= len(layers) // 2):
            angle[layer.stage].append(hatch_angle(shown[k - 1], shown[k], target))
    assert angle["hatching"] and max(angle["hatching"]) <= 20, angle
    assert min(angle["cross-hatching"]) >= 40, angle


def test_graphite_first_grey_lines_denser_where_darker_then_colour():
    target = photo("astronaut", 192)
    layers, shown = process(PaintRequest(target, steps=16, seed=0, options=PENCIL))
    light = luminance(target)
    for k, layer in enumerate(layers, 1):
        changed = np.any(shown[k] != shown[k - 1], axis=2)
        if layer.stage in ("hatching", "cross-hatching"):  # graphite: grey, and darker
            assert np.percentile(chroma(shown[k])[changed], 95) <= 12, k
            # (a stroke's faintest edge, unpremultiplied, may round a level up)
            assert (luminance(shown[k]) <= luminance(shown[k - 1]) + 1.5)[changed].all(), k
    hatched = [k for k, layer in enumerate(layers, 1) if layer.stage == "hatching"][-1]
    crossed = [k for k, layer in enumerate(layers, 1) if layer.stage == "cross-hatching"][-1]
    drawn = np.any(shown[hatched] != shown[0], axis=2)
    darker = np.any(shown[crossed] != shown[hatched], axis=2)
    assert light[darker].mean() < light[drawn].mean() - 20  # cross-hatching goes in the darks
    coloured = [k for k, layer in enumerate(layers, 1) if layer.stage == "colour"][-1]
    assert chroma(shown[coloured]).mean() > chroma(shown[crossed]).mean() + 10


def test_a_drawing_in_greys_has_no_colour_and_ends_on_the_picture_in_greys():
    target = photo("coffee", 128)
    layers, shown = process(PaintRequest(target, steps=12, seed=0, options=GREYS))
    assert "colour" not in [layer.stage for layer in layers] and len(layers) == 12
    assert all(chroma(frame).max() <= 2 for frame in shown)
    assert np.abs(shown[-1].astype(int) - grey(target)).max() <= 4


def test_the_same_seed_draws_the_same_lines_and_another_seed_others():
    target = photo("coffee", 96)
    first, again, other = (
        process(PaintRequest(target, steps=9, seed=seed, options=PENCIL))[1] for seed in (5, 5, 6)
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize("kind", ["holes", "blocks"])
def test_a_started_canvas_keeps_its_finished_parts_in_pencil(kind):
    target = photo("astronaut", 160)
    start = make_start(kind, target, seed=1)
    _, shown = process(PaintRequest(start, target, steps=10, seed=1, options=PENCIL))
    finished = np.all(start == target, axis=2)
    assert np.array_equal(shown[-1][finished], start[finished])
    assert np.abs(shown[-1].astype(int) - target).max() <= 4


def test_a_mask_keeps_the_drawing_inside_it():
    target = photo("coffee", 96)
    mask = np.zeros(target.shape[:2], bool)
    mask[:, :48] = True
    start = np.full_like(target, 255)
    _, shown = process(PaintRequest(start, target, mask=mask, steps=8, seed=0, options=PENCIL))
    assert (shown[-1][~mask] == 255).all()
    assert np.abs(shown[-1][mask].astype(int) - target[mask]).max() <= 4


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 16, 40])
@pytest.mark.parametrize("options", [PENCIL, GREYS], ids=["colour", "greys"])
def test_any_number_of_steps_gets_its_stages_finish_last(steps, options):
    in_colour = options is PENCIL
    counts = stage_counts(steps, in_colour)
    assert sum(counts.values()) == steps and counts["finish"] >= 1
    if steps >= 4 + in_colour:
        assert all(counts[s] >= 1 for s in STAGES if in_colour or s != "colour")
    target = photo("coffee", 64)
    layers, shown = process(PaintRequest(target, steps=steps, seed=0, options=options))
    assert len(layers) == steps and layers[-1].stage == "finish"
    goal = target if in_colour else grey(target)
    assert np.abs(shown[-1].astype(int) - goal).max() <= 4


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (2, 2), (3, 40)])
def test_thin_and_tiny_pictures_are_drawn_in_pencil(shape):
    target = np.zeros((*shape, 4), np.uint8)
    target[..., 0] = np.linspace(0, 255, shape[1])[None, :]
    target[..., 3] = 255
    layers, shown = process(PaintRequest(target, steps=8, seed=0, options=PENCIL))
    assert len(layers) == 8 and np.abs(shown[-1].astype(int) - target).max() <= 4


def test_a_colour_option_it_cannot_read_is_refused_with_its_choices():
    request = PaintRequest(photo("coffee", 32), options={"style": "pencil", "colour": "no"})
    with pytest.raises(PaintError, match="true, false"):
        list(get_engine("strokes").paint(request))

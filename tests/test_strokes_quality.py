"""The strokes issues' quality targets on 512 px photos, 16 steps (slow: seconds each).

bench/quality.py prints the same figures for six photos, five kinds of start and three seeds.
"""

import numpy as np
import pytest
from conftest import half_finished, photo
from paintstep.engines import get_engine
from paintstep.model.strokes import brush_radii
from paintstep.process import PaintRequest, frames
from paintstep.quality import (
    changed_fraction,
    detail_error,
    paper_share,
    paste_shares,
    psnr,
    structure_error,
)
from starts import make_start

pytestmark = pytest.mark.slow


def process(request):
    layers = list(get_engine("strokes").paint(request))
    start = request.first_frame()
    return layers, [start] + list(frames(start, layers))


@pytest.fixture(scope="module")
def coffee512():
    return photo("coffee", 512)


def test_from_blank_paper_structure_first_details_last_local_steps(coffee512):
    request = PaintRequest(coffee512, steps=16, seed=0)
    layers, shown = process(request)
    assert len(layers) == 16
    assert psnr(shown[-1], coffee512) >= 30
    quarter = shown[4]
    assert structure_error(quarter, coffee512) <= 0.4 * structure_error(shown[0], coffee512)
    assert detail_error(quarter, coffee512) >= 0.3 * detail_error(shown[0], coffee512)
    changed = [changed_fraction(a, b) for a, b in zip(shown, shown[1:])]
    assert np.median(changed) <= 0.5


def test_semi_to_complete_keeps_the_finished_half_and_ends_on_the_target(coffee512):
    start = half_finished(coffee512)
    request = PaintRequest(start, target=coffee512, steps=16, seed=0)
    layers, shown = process(request)
    assert psnr(shown[-1], coffee512) >= 30
    left = slice(0, 256)
    assert np.any(shown[-1][:, left] != start[:, left], axis=2).mean() <= 0.01
    quarter = shown[4]
    assert structure_error(quarter, coffee512) < structure_error(start, coffee512)
    changed = [changed_fraction(a, b) for a, b in zip(shown, shown[1:])]
    assert np.median(changed) <= 0.5


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_semi_to_complete_settles_the_large_shapes_in_the_first_quarter(name):
    # The photo with its right half a blurred block-in: after 4 of 16 steps, at least 60 % of
    # the error in the large shapes is gone (the target; bench/quality.py).
    target = photo(name, 512)
    start = half_finished(target)
    _, shown = process(PaintRequest(start, target=target, steps=16, seed=0))
    assert structure_error(shown[4], target) <= 0.4 * structure_error(start, target)


@pytest.mark.parametrize(
    ("name", "start"),
    [("coffee", "blank"), ("coffee", "transparent"), ("coffee", "blur"), ("moon", "holes")],
)
def test_the_finish_is_a_glaze_not_a_photo_pasted_in(name, start):
    # Issue 12: no step lands more than 15 % of what it changes on the finish in one visible
    # jump (5 % over the process), and the frame at 90 % is already close to the last.
    target = photo(name, 512)
    if start in ("blank", "transparent"):
        paper = "transparent" if start == "transparent" else None
        request = PaintRequest(target, steps=16, seed=1, paper=paper)
    else:
        request = PaintRequest(make_start(start, target, 1), target=target, steps=16, seed=1)
    _, shown = process(request)
    per_step, overall = paste_shares(shown)
    assert max(per_step) <= 0.15 and overall < 0.05
    assert psnr(shown[round(0.9 * 16)], shown[-1]) >= 33
    assert psnr(shown[-1], target) >= 40


@pytest.mark.parametrize("name", ["coffee", "moon", "hubble_deep_field"])
def test_the_lay_in_covers_the_paper_in_the_first_quarter(name):
    target = photo(name, 512)
    _, shown = process(PaintRequest(target, steps=16, seed=0))
    assert paper_share(shown[0], shown[4], target) < 0.10


def test_the_smallest_brush_reaches_a_few_pixels_at_every_size():
    for side in (256, 1024, 4096, 12000):
        radii = brush_radii(side, side, 1.0)
        assert radii[0] >= side / 20 and radii[-1] <= 1.5  # a brush 3 px wide at most

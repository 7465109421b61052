"""The quality figures measure what they say, and the kinds of start are what they say."""

import numpy as np
import pytest
from conftest import photo
from paintstep.quality import (
    colour_difference,
    finished_region,
    kept_changed,
    paper_share,
    paste_counts,
    paste_shares,
    psnr,
    step_progress,
)
from starts import STARTS, make_start

WHITE = (255, 255, 255, 255)


def blank(target):
    paper = np.empty_like(target)
    paper[...] = WHITE
    return paper


def cross_fade(start, target, steps):
    """Frames 0..steps, each a little more of the target, rounded to levels."""
    a, b = start.astype(np.float64), target.astype(np.float64)
    return [np.rint(a + (b - a) * k / steps).astype(np.uint8) for k in range(steps + 1)]


@pytest.fixture(scope="module")
def picture():
    return photo("astronaut", 96)


def test_a_step_that_pastes_the_target_is_all_jumps_and_a_cross_fade_none(picture):
    # Half painted in a blurred wash, then the last step lays the photo itself over it.
    wash = np.full_like(picture, 128)
    wash[..., 3] = 255
    pasted = [blank(picture), wash, picture.copy()]
    shares, overall = paste_shares(pasted)
    assert shares[0] < 0.01  # a wash lands on the final frame only where the photo is grey
    assert shares[1] > 0.8  # most of the photo is more than 24 levels from mid grey
    assert 0.3 < overall < shares[1]
    faded = cross_fade(blank(picture), picture, 16)
    shares, overall = paste_shares(faded)
    assert max(shares) < 0.05
    assert overall < 0.05


def test_paste_counts_a_jump_only_when_it_is_large_and_lands_on_the_final_frame():
    before = np.full((1, 4, 4), 100, np.uint8)
    before[..., 3] = 255
    after = before.copy()
    after[0, 0, :3] = 200  # a jump of 100 that lands on the final frame
    after[0, 1, :3] = 110  # lands on it, but moves 10: a glaze, not a jump
    after[0, 2, :3] = 200  # a jump of 100 that lands 20 away from the final frame
    final = after.copy()
    final[0, 2, :3] = 220
    assert paste_counts(before, after, final) == (1, 3)
    assert paste_counts(before, before, final) == (0, 0)


def test_a_transparent_pixel_made_white_is_no_visible_jump():
    hole = np.zeros((1, 2, 4), np.uint8)
    white = np.full((1, 2, 4), 255, np.uint8)
    assert paste_counts(hole, white, white) == (0, 2)
    assert colour_difference(hole, white).max() == 255  # but it is not finished either


def test_paper_share_is_the_unpainted_share_of_the_paintable_area(picture):
    paper = blank(picture)
    half = paper.copy()
    half[:, : picture.shape[1] // 2] = picture[:, : picture.shape[1] // 2]
    paintable = colour_difference(paper, picture) > 4
    left = paintable[:, : picture.shape[1] // 2].sum()
    assert paper_share(paper, half, picture) == pytest.approx(1 - left / paintable.sum())
    assert 0.4 < paper_share(paper, half, picture) < 0.6
    assert paper_share(paper, paper, picture) == 1
    assert paper_share(paper, picture, picture) == 0
    grey = np.full_like(picture, 200)  # painted, though not yet right: no paper shows
    assert paper_share(paper, grey, picture) == 0


def test_finished_region_is_where_the_start_is_the_target_leaving_out_specks(picture):
    start = picture.copy()
    start[:, 48:, :3] = 255 - picture[:, 48:, :3]
    start[40, 60] = picture[40, 60]  # one pixel that happens to match
    start[10:14, 70:74] = picture[10:14, 70:74]  # a small part that is finished
    finished = finished_region(start, picture)
    far = colour_difference(start, picture) > 4
    assert finished[:, :47].all()
    assert not finished[40, 60]
    assert finished[10:14, 70:74].all()
    assert not (finished & far).any()


def test_kept_changed_counts_the_finished_pixels_the_process_touched(picture):
    finished = np.zeros(picture.shape[:2], bool)
    finished[:, :48] = True
    final = picture.copy()
    final[:24, :48, 0] ^= 1  # a quarter of the finished half, one level off
    final[:, 60:] = 0  # outside the finished region: does not count
    assert kept_changed(picture, final, finished) == pytest.approx(0.25)
    assert kept_changed(picture, picture, finished) == 0


def test_psnr_of_the_frame_at_ninety_percent_of_a_cross_fade_and_of_a_paste(picture):
    faded = cross_fade(blank(picture), picture, 10)
    assert psnr(faded[9], faded[-1]) > psnr(faded[5], faded[-1])
    pasted = [blank(picture)] * 10 + [picture]
    assert psnr(pasted[9], pasted[-1]) < 15


def test_step_progress_is_the_share_of_what_is_left_that_a_step_takes_away(picture):
    faded = cross_fade(blank(picture), picture, 4)
    # A linear cross-fade takes a quarter of the way, then a third of what is left, a half...
    assert step_progress(faded) == pytest.approx([1 / 4, 1 / 3, 1 / 2, 1], abs=0.02)
    stalled = [faded[0], faded[1], faded[1], faded[4]]
    assert step_progress(stalled)[1] == 0
    back = [faded[0], faded[2], faded[1], faded[4]]
    assert step_progress(back)[1] < 0


@pytest.mark.parametrize("kind", list(STARTS))
@pytest.mark.parametrize("size", [(80, 120), (150, 100)])
def test_each_kind_of_start_is_a_half_finished_canvas_of_the_target(kind, size):
    target = photo("coffee", size[0])[: size[1]]
    start = make_start(kind, target, seed=3)
    assert start.shape == target.shape and start.dtype == np.uint8
    assert np.array_equal(start, make_start(kind, target, seed=3))
    assert not np.array_equal(start, make_start(kind, target, seed=4)) or kind == "blur"
    same = np.all(start == target, axis=2)
    assert 0.1 < same.mean() < 0.9  # a finished region, and work left elsewhere
    assert (colour_difference(start, target)[~same] > 4).mean() > 0.8
    assert finished_region(start, target).mean() > 0.5 * same.mean()


def test_the_sketch_has_dark_lines_on_paper_and_the_holes_white_or_transparent_paper():
    target = photo("astronaut", 256)
    drawn = make_start("sketch", target, seed=0)
    grey = drawn[..., :3].mean(axis=2)
    paper = np.all(drawn == 255, axis=2)
    assert paper.mean() > 0.2
    assert ((grey < 110) & ~np.all(drawn == target, axis=2)).mean() > 0.005
    cut = make_start("holes", target, seed=1)
    hole = ~np.all(cut == target, axis=2)
    fills = {tuple(p) for p in cut[hole]}
    assert fills <= {WHITE, (0, 0, 0, 0)}

"""The wash a started canvas gets first, and strokes judged by all they cover."""

import numpy as np
from conftest import photo
from paintstep.engines import get_engine
from paintstep.model.brush import Strokes, render_layer
from paintstep.model.raster import GLAZE
from paintstep.model.stroke_plan import WORTH, improvement
from paintstep.model.wash import wash_layer
from paintstep.process import PaintRequest, frames
from paintstep.quality import structure_error
from starts import make_start


def test_a_block_in_is_first_washed_towards_its_large_shapes_keeping_its_edges():
    target = photo("coffee", 160)
    start = make_start("blocks", target, seed=2)
    request = PaintRequest(start, target, steps=12, seed=2)
    layers = list(get_engine("strokes").paint(request))
    shown = [start, *frames(start, layers)]
    move = np.abs(shown[1].astype(int) - start).max(axis=2)
    # A tint, not a repaint: no pixel moves further than a glaze moves one...
    assert 0 < move.max() <= GLAZE
    # ...the finished parts (the target already) stay as they are...
    finished = np.all(start == target, axis=2)
    assert not move[finished].any()
    # ...and the large shapes come much closer in that one step.
    assert structure_error(shown[1], target) < 0.6 * structure_error(start, target)
    # It moves neighbours alike (the block-in's own edges stay), where pasting the target
    # would move them each its own way.
    moved = shown[1][..., :3].astype(int) - start[..., :3]
    both = (move > 0)[:, 1:] & (move > 0)[:, :-1]
    pasted = target[..., :3].astype(int) - start[..., :3]
    alike = np.abs(np.diff(moved, axis=1))[both].mean()
    assert alike < 0.25 * np.abs(np.diff(pasted, axis=1))[both].mean()


def test_from_blank_paper_the_first_step_is_brushwork_not_a_wash():
    target = photo("coffee", 96)
    layer = next(iter(get_engine("strokes").paint(PaintRequest(target, steps=8))))
    paper = np.full_like(target, 255)
    shown = next(iter(frames(paper, [layer])))
    assert np.abs(shown.astype(int) - paper).max() > GLAZE


def sky(level: int, size: int = 96) -> np.ndarray:
    picture = np.zeros((size, size, 4), np.uint8)
    picture[..., :3] = level
    picture[..., 3] = 255
    return picture


def test_a_few_bright_stars_do_not_lighten_the_sky_around_them():
    canvas = sky(10)
    stars = canvas.copy()
    rng = np.random.default_rng(0)
    spots = rng.random(canvas.shape[:2]) < 0.04  # blurred as a mean: 9 levels lighter
    stars[spots, :3] = 250
    paintable = np.ones(canvas.shape[:2], bool)
    assert wash_layer(canvas, stars, paintable, 16.0, tolerance=4) is None
    # A sky that is lighter all over is washed lighter, by how much lighter it is.
    washed = wash_layer(canvas, sky(20), paintable, 16.0, tolerance=4)
    assert washed is not None
    layer, x, y = washed
    assert (x, y) == (0, 0) and np.all(layer[..., 3] == 255)
    assert np.abs(layer[8:-8, 8:-8, :3].astype(int) - 20).max() <= 1


def test_a_wide_stroke_along_a_thin_line_is_judged_by_all_it_smears():
    # A 2 px light line on a dark canvas; a stroke of the line's colour 4 px wide along it
    # paints the line and twice as much dark around it. Judged only at its middle and at 0.7
    # of its radius (as strokes were), it looked worth painting.
    dark = sky(0, 32)
    line = dark.copy()
    line[16:18, 4:28, :3] = 200
    points = np.zeros((1, 12, 2), np.float32)
    points[0, :, 0] = np.linspace(6, 26, 12)
    points[0, :, 1] = 16.5
    stroke = Strokes(
        points,
        np.array([12]),
        np.array([[200 / 255] * 3 + [0.85]], np.float32),
        np.array([2.0], np.float32),
    )
    painted = render_layer(stroke, 0, 0, 32, 32)
    seen = np.asarray(painted[..., :3], float) * painted[..., 3:] / 255
    # What it paints takes the canvas further from the line than it was:
    assert np.abs(seen - line[..., :3]).sum() > np.abs(dark[..., :3] - line[..., :3]).sum()
    gain, change = improvement(stroke, dark, line)
    assert gain[0] < WORTH * change[0]


def test_a_small_started_canvas_with_one_brush_size_is_painted_without_a_wash():
    # At detail 0.25 a 32 px canvas has one brush size only: nothing to wash with.
    target = photo("coffee", 32)
    start = make_start("blocks", target, seed=0)
    request = PaintRequest(start, target, steps=6, seed=0, options={"detail": 0.25})
    layers = list(get_engine("strokes").paint(request))
    assert len(layers) == 6
    final = list(frames(start, layers))[-1]
    assert np.abs(final.astype(int) - target).max() <= 4

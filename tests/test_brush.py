"""How one brush stroke looks: pressed on full, carried along, lifted off to a taper."""

import numpy as np
from paintstep.model.brush import Strokes, render_layer


def one_stroke(count, radius=10.0):
    points = np.zeros((1, 12, 2), np.float32)
    points[0, :, 0] = 20 + np.minimum(np.arange(12), count - 1) * radius
    points[0, :, 1] = 40
    colour = np.array([[0.1, 0.2, 0.6, 1.0]], np.float32)
    return Strokes(points, np.array([count]), colour, np.array([radius], np.float32))


def width_at(layer, x):
    return int(np.count_nonzero(layer[:, x, 3] > 127))


def test_a_stroke_starts_full_and_tapers_where_the_brush_lifts():
    layer = render_layer(one_stroke(12), 0, 0, 160, 80)
    start, middle, end = width_at(layer, 25), width_at(layer, 70), width_at(layer, 128)
    assert 17 <= middle <= 21  # the brush's full width, 2 x 10 px
    assert start >= 0.75 * middle  # pressed on full
    assert end <= 0.6 * middle  # lifted off
    assert layer[:, 5:15, 3].max() > 0 and layer[:, 140:, 3].max() == 0  # round ends, no more


def test_a_dab_is_a_round_spot_of_the_brush_size():
    layer = render_layer(one_stroke(1), 0, 0, 60, 80)
    painted = layer[..., 3] > 127
    ys, xs = np.nonzero(painted)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 1
    assert 18 <= xs.max() - xs.min() + 1 <= 21
    assert abs(painted.sum() - np.pi * 10**2) < 0.08 * np.pi * 10**2


def turned(strokes):
    """The stroke drawn down the layer instead of across it (x and y swapped)."""
    points = strokes.points[..., ::-1].copy()
    return Strokes(points, strokes.count, strokes.color, strokes.radius, strokes.bristles)


def test_bristles_leave_streaks_along_the_stroke_and_none_when_off():
    smooth = one_stroke(12)
    hairy = one_stroke(12)
    hairy.bristles = 0.8
    plain = render_layer(smooth, 0, 0, 160, 80)[34:47, 40:100, 3].astype(float)
    assert plain.std() < 1  # no texture: the stroke's inside is one opacity
    streaks = render_layer(hairy, 0, 0, 160, 80)[34:47, 40:100, 3].astype(float)
    assert streaks.mean() < plain.mean() - 10  # the driest hairs leave paint out
    across = streaks.std(axis=0).mean()  # from hair to hair
    along = streaks.std(axis=1).mean()  # along one hair
    assert across > 15 and along < 0.6 * across
    # The hairs turn with the stroke.
    down = render_layer(turned(hairy), 0, 0, 80, 160)[40:100, 34:47, 3].astype(float)
    assert down.std(axis=1).mean() > 15 and down.std(axis=0).mean() < 0.6 * across


def test_a_thin_brush_stays_smooth_with_bristles():
    smooth = one_stroke(12, radius=2.0)
    hairy = one_stroke(12, radius=2.0)
    hairy.bristles = 1.0
    assert np.array_equal(render_layer(smooth, 0, 0, 80, 60), render_layer(hairy, 0, 0, 80, 60))

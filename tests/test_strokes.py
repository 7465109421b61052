import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import half_finished, photo
from paintstep.engines import get_engine
from paintstep.model.strokes import brush_radii
from paintstep.process import PaintError, PaintRequest, composite, frames, thumbnail
from paintstep.quality import (
    changed_fraction,
    detail_error,
    paste_shares,
    psnr,
    step_progress,
    structure_error,
)


def paint(request, cancel=None):
    return list(get_engine("strokes").paint(request, cancel))


def all_frames(request, layers):
    return [request.first_frame()] + list(frames(request.first_frame(), layers))


@pytest.mark.parametrize("steps", [1, 2, 7, 16, 40])
def test_delivers_exactly_the_steps_asked_for_in_order(astronaut, steps):
    layers = paint(PaintRequest(astronaut, steps=steps, seed=3))
    assert [layer.index for layer in layers] == list(range(1, steps + 1))
    assert all(not layer.is_empty for layer in layers)
    # Placed in plain ints, which the protocol's msgpack can send (numpy's it cannot).
    assert all(type(v) is int for layer in layers for v in layer.bbox)


def test_frames_are_the_layers_composited_and_end_on_the_picture(astronaut):
    request = PaintRequest(astronaut, steps=12, seed=1)
    layers = paint(request)
    composited = all_frames(request, layers)
    # Each step's thumbnail is of the engine's own frame k: the composite must give the same.
    for layer, frame in zip(layers, composited[1:]):
        assert np.array_equal(layer.thumbnail, thumbnail(frame))
    assert psnr(composited[-1], astronaut) >= 40
    # It got there by painting: half way it is far off, and the last step is no paste.
    assert psnr(composited[6], astronaut) < 30
    assert paste_shares(composited)[0][-1] <= 0.15


def test_same_seed_same_process_other_seed_other_strokes(coffee):
    first = paint(PaintRequest(coffee, steps=6, seed=7))
    again = paint(PaintRequest(coffee, steps=6, seed=7))
    other = paint(PaintRequest(coffee, steps=6, seed=8))
    assert all(
        np.array_equal(a.pixels, b.pixels) and a.bbox == b.bbox for a, b in zip(first, again)
    )
    assert any(
        a.bbox != b.bbox or not np.array_equal(a.pixels, b.pixels) for a, b in zip(first, other)
    )


def test_the_process_is_the_same_on_one_core_and_on_several(monkeypatch):
    # Work split by bands of rows over threads, and layers drawn in bands on helper
    # processes (any layer here, as if it were large), must never change a pixel.
    from paintstep.model import band_render

    monkeypatch.setattr(band_render, "PARALLEL_AREA", 0)
    target = photo("coffee", 320)
    start = half_finished(target)
    layers = {}
    for threads in ("1", "4"):
        monkeypatch.setenv("PAINTSTEP_THREADS", threads)
        for request in (
            PaintRequest(target, steps=10, seed=2),
            PaintRequest(start, target, steps=10),
            PaintRequest(target, steps=6, seed=1, options={"bristles": 0.6}),
        ):
            layers.setdefault(threads, []).extend(paint(request))
    assert len(layers["1"]) == len(layers["4"]) == 26
    for one, several in zip(layers["1"], layers["4"]):
        assert one.bbox == several.bbox and np.array_equal(one.pixels, several.pixels)


def test_large_shapes_come_first_and_details_last(astronaut):
    request = PaintRequest(astronaut, steps=16, seed=2)
    composited = all_frames(request, paint(request))
    quarter = composited[4]
    assert structure_error(quarter, astronaut) <= 0.4 * structure_error(composited[0], astronaut)
    assert detail_error(quarter, astronaut) >= 0.3 * detail_error(composited[0], astronaut)


def test_each_step_paints_part_of_the_canvas_not_all_of_it(astronaut):
    request = PaintRequest(astronaut, steps=16, seed=2)
    composited = all_frames(request, paint(request))
    changed = [changed_fraction(a, b) for a, b in zip(composited, composited[1:])]
    assert np.median(changed) <= 0.5


@pytest.mark.parametrize("light", [1.0, 0.25])
def test_every_step_shows_progress_on_light_and_dark_pictures(astronaut, light):
    # Steps are dealt by visible change, not by the amount of paint: each takes away a like
    # part of what is still off the picture, a dark one as well.
    picture = astronaut.copy()
    picture[..., :3] = (picture[..., :3] * light).astype(np.uint8)
    request = PaintRequest(picture, steps=16, seed=2)
    layers = paint(request)
    assert min(step_progress(all_frames(request, layers))[:-1]) >= 0.05
    # Semi-opaque marks with varied colour, not flat fills.
    early = layers[1].pixels
    partial = (early[..., 3] > 0) & (early[..., 3] < 255)
    assert partial.mean() > 0.05
    colours = early[early[..., 3] > 0][:, :3]
    assert len(np.unique(colours, axis=0)) > 20


def test_no_step_is_empty_when_half_of_the_canvas_is_finished(astronaut):
    start = astronaut.copy()
    start[64:] = 255  # the top half is done; the bottom is blank paper
    layers = paint(PaintRequest(start, target=astronaut, steps=16, seed=0))
    assert len(layers) == 16 and all(not layer.is_empty for layer in layers)


def test_a_flat_change_of_colour_at_a_high_tolerance_is_painted():
    # No brush size finds anything to refine: the process is still dealt, not divided by zero.
    start = np.full((64, 64, 4), 255, np.uint8)
    target = start.copy()
    target[..., :3] = 215
    layers = paint(PaintRequest(start, target=target, steps=8, options={"tolerance": 32}))
    assert len(layers) == 8


def test_finished_parts_of_a_half_finished_canvas_stay_untouched():
    target = photo("astronaut", 128)
    start = half_finished(target)
    request = PaintRequest(start, target=target, steps=10, seed=4)
    composited = all_frames(request, paint(request))
    left = slice(0, target.shape[1] // 2)
    for frame in composited:
        assert np.any(frame[:, left] != start[:, left], axis=2).mean() <= 0.01
    assert psnr(composited[-1], target) >= 30
    assert changed_fraction(composited[0], composited[-1]) > 0.2


def test_paints_only_inside_the_mask(coffee):
    mask = np.zeros(coffee.shape[:2], bool)
    mask[20:70, 30:90] = True
    request = PaintRequest(coffee, mask=mask, steps=5, seed=0)
    composited = all_frames(request, paint(request))
    paper = composited[0]
    for frame in composited[1:]:
        assert np.array_equal(frame[~mask], paper[~mask])
    assert psnr(composited[-1][20:70, 30:90], coffee[20:70, 30:90]) >= 30


def test_a_transparent_canvas_is_rebuilt_from_transparent_paper():
    canvas = photo("coffee", 96)
    yy, xx = np.mgrid[: canvas.shape[0], : canvas.shape[1]]
    canvas[..., 3] = np.where((xx - 48) ** 2 + (yy - 32) ** 2 < 28**2, 255, 0)
    canvas[..., 3][(xx > 70) & (yy > 40)] = 128
    request = PaintRequest(canvas, steps=6, seed=0)
    layers = paint(request)
    composited = all_frames(request, layers)
    assert np.all(composited[0][..., 3] == 0)
    alpha_error = np.abs(composited[-1][..., 3].astype(int) - canvas[..., 3])
    assert alpha_error.max() <= 4
    assert psnr(composited[-1], canvas) >= 30


def test_nothing_to_paint_is_said_plainly(coffee):
    with pytest.raises(PaintError, match="nothing left to paint"):
        paint(PaintRequest(coffee, target=coffee.copy(), steps=4))


def test_unknown_option_and_bad_value_are_refused(coffee):
    with pytest.raises(PaintError, match="no option hue"):
        paint(PaintRequest(coffee, steps=2, options={"hue": 1}))
    with pytest.raises(PaintError, match="at most"):
        paint(PaintRequest(coffee, steps=2, options={"opacity": 3}))


def test_the_detail_option_sets_how_fine_the_brushwork_gets(coffee):
    def smallest_brush(detail):
        settings = get_engine("strokes").settings(PaintRequest(coffee, options={"detail": detail}))
        return brush_radii(512, 512, settings["detail"])[-1]

    assert smallest_brush(2.0) < smallest_brush(1.0) < smallest_brush(0.25)
    coarse = paint(PaintRequest(coffee, steps=4, options={"detail": 0.25}))
    fine = paint(PaintRequest(coffee, steps=4, options={"detail": 2.0}))
    assert any(not np.array_equal(a.pixels, b.pixels) for a, b in zip(coarse, fine))


def test_cancel_stops_within_one_step(astronaut):
    cancel = threading.Event()
    got = []
    for layer in get_engine("strokes").paint(PaintRequest(astronaut, steps=20), cancel):
        got.append(layer)
        if len(got) == 3:
            cancel.set()
    assert len(got) == 3


def test_default_path_never_imports_torch():
    code = (
        "import sys, paintstep, paintstep.cli, paintstep.engines;"
        "paintstep.engines.get_engine('strokes');"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("patch", [2, 8, 20])
def test_a_nearly_finished_canvas_gets_its_last_touches(patch):
    target = photo("astronaut", 128)
    start = target.copy()
    start[40 : 40 + patch, 50 : 50 + patch, :3] //= 2
    request = PaintRequest(start, target=target, steps=8, seed=0)
    layers = paint(request)
    assert len(layers) == 8
    final = all_frames(request, layers)[-1]
    assert np.abs(final.astype(int) - target).max() <= 4
    outside = np.ones(target.shape[:2], bool)
    outside[40 : 40 + patch, 50 : 50 + patch] = False
    assert np.array_equal(final[outside], start[outside])


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (2, 500), (7, 900)])
def test_thin_and_tiny_pictures_are_painted(shape):
    picture = photo("coffee", 900)[: shape[0], : shape[1]].copy()
    request = PaintRequest(picture, steps=5)
    layers = paint(request)
    assert [layer.index for layer in layers] == [1, 2, 3, 4, 5]
    final = all_frames(request, layers)[-1]
    assert np.abs(final.astype(int) - picture).max() <= 4


def test_a_translucent_picture_ends_on_the_picture():
    picture = photo("coffee", 96)
    picture[..., 3] = 160
    picture[:20, :20, 3] = 0
    request = PaintRequest(picture, steps=12, seed=1)
    final = all_frames(request, paint(request))[-1]
    assert np.all(final[..., 3] == picture[..., 3])
    shown = final[..., 3] > 0
    assert np.abs(final[shown].astype(int) - picture[shown]).max() <= 4


def test_a_target_with_transparent_parts_is_laid_over_the_canvas():
    canvas = photo("coffee", 96)
    target = 255 - canvas
    target[..., 3] = 255
    target[:, 60:, 3] = 0  # the cut-out ends here: the canvas shows
    request = PaintRequest(canvas, target=target, steps=6)
    final = all_frames(request, paint(request))[-1]
    assert np.array_equal(final[:, 60:], canvas[:, 60:])
    assert np.abs(final[:, :60].astype(int) - target[:, :60]).max() <= 4


def test_a_grey_picture_is_painted_in_greys():
    grey = photo("astronaut", 96)
    grey[..., :3] = grey[..., :3].mean(axis=2, keepdims=True).astype(np.uint8)
    for layer in paint(PaintRequest(grey, steps=6, seed=3)):
        painted = layer.pixels[layer.pixels[..., 3] > 0][:, :3].astype(int)
        assert (painted.max(axis=1) - painted.min(axis=1)).max() <= 2


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"seed": -1}, "0 or more"),
        ({"seed": 1.5}, "whole number"),
        ({"options": {"detail": "nan"}}, "must be a number"),
        ({"options": {"tolerance": "3.5"}}, "must be a whole number"),
    ],
)
def test_bad_seeds_and_options_are_refused_in_a_sentence(coffee, kwargs, says):
    with pytest.raises(PaintError, match=says):
        paint(PaintRequest(coffee, steps=2, **kwargs))


def test_big_brushes_planned_on_a_reduced_copy_paint_where_the_picture_needs_them():
    # A dark square on white: the lay-in, planned on a copy a few pixels a radius, must put
    # its dark strokes over the square at full size, and none far outside it.
    target = np.full((512, 512, 4), 255, np.uint8)
    target[128:384, 192:448, :3] = 30
    first = paint(PaintRequest(target, steps=16, seed=0))[0]
    frame = PaintRequest(target, steps=16).first_frame()
    composite(frame, first)
    dark = 255.0 - frame[..., 0]
    near = dark[96:416, 160:480].sum()  # the square and a brush radius around it
    assert dark[128:384, 192:448].mean() > 40 and near > 0.95 * dark.sum()


def test_a_dab_is_judged_by_what_it_paints_around_its_centre_too():
    # A disc of star colour 5 px wide on a 1 px star paints far more dark sky than star:
    # judged only at its centre (as dabs were), it looked like pure gain.
    from paintstep.model.brush import Strokes
    from paintstep.model.stroke_plan import WORTH, improvement

    sky = np.zeros((32, 32, 4), np.uint8)
    sky[..., 3] = 255
    star = sky.copy()
    star[16, 16, :3] = 240
    dab = Strokes(
        np.full((1, 12, 2), 16, np.float32),
        np.array([1]),
        np.array([[240 / 255, 240 / 255, 240 / 255, 1.0]], np.float32),
        np.array([2.5], np.float32),
    )
    gain, change = improvement(dab, sky, star)
    assert gain[0] < WORTH * change[0]


def test_with_bristles_the_strokes_show_hairs_and_the_process_still_ends_on_the_picture(coffee):
    smooth = list(paint(PaintRequest(coffee, steps=8, seed=3)))
    hairy = list(paint(PaintRequest(coffee, steps=8, seed=3, options={"bristles": 0.8})))

    # The lay-in's strokes are streaky: their paint's opacity varies inside each layer.
    def spread(layer):
        alpha = layer.pixels[..., 3]
        return float(alpha[alpha > 0].std())

    assert spread(hairy[0]) > spread(smooth[0]) + 10
    final = list(frames(PaintRequest(coffee).first_frame(), hairy))[-1]
    assert np.abs(final.astype(int) - coffee).max() <= 4


def test_the_painterly_steps_name_their_stage_in_order(astronaut):
    layers = list(paint(PaintRequest(astronaut, steps=16, seed=0)))
    order = ["lay-in", "shapes", "details", "finish"]
    stages = [layer.stage for layer in layers]
    assert stages[0] == "lay-in" and stages[-1] == "finish"
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)

import numpy as np
import pytest
from paintstep.process import (
    MAX_STEPS,
    PaintError,
    PaintRequest,
    StepLayer,
    Thumbnail,
    blend_over,
    composite,
    crop_to_paint,
    frames,
    premultiplied,
    solve_over,
    thumbnail,
)
from PIL import Image


def random_rgba(rng, shape, opaque=False):
    pixels = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    if opaque:
        pixels[..., 3] = 255
    return pixels


def reference_over(dst, src):
    """Porter-Duff over on straight alpha, in float64, as any paint program does it."""
    s, d = src / 255.0, dst / 255.0
    sa, da = s[..., 3:], d[..., 3:]
    out_a = sa + da * (1 - sa)
    with np.errstate(invalid="ignore", divide="ignore"):
        rgb = (s[..., :3] * sa + d[..., :3] * da * (1 - sa)) / out_a
    rgb = np.where(out_a > 0, rgb, d[..., :3])
    return np.concatenate([rgb, out_a], axis=-1) * 255


def test_blend_over_is_normal_blending_to_eight_bit_rounding():
    rng = np.random.default_rng(0)
    dst, src = random_rgba(rng, (64, 64)), random_rgba(rng, (64, 64))
    out = blend_over(dst, src)
    assert np.abs(out.astype(float) - reference_over(dst, src)).max() <= 0.5 + 1e-6


def test_blending_over_an_opaque_canvas_rounds_exactly():
    rng = np.random.default_rng(2)
    dst, src = random_rgba(rng, (128, 128), opaque=True), random_rgba(rng, (128, 128))
    out = blend_over(dst, src)
    assert np.abs(out.astype(float) - reference_over(dst, src)).max() <= 0.5 + 1e-6
    assert np.all(out[..., 3] == 255)


def test_opaque_paint_replaces_and_clear_paint_keeps():
    rng = np.random.default_rng(1)
    dst, src = random_rgba(rng, (8, 8)), random_rgba(rng, (8, 8))
    src[:4, :, 3] = 255
    src[4:, :, 3] = 0
    out = blend_over(dst, src)
    assert np.array_equal(out[:4], src[:4])
    assert np.array_equal(out[4:], dst[4:])


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("painted", [0.05, 0.9])
def test_composite_over_a_big_canvas_is_normal_blending_on_any_number_of_cores(
    monkeypatch, threads, painted
):
    # Mostly clear and mostly painted layers go different ways; bands go to several threads.
    monkeypatch.setenv("PAINTSTEP_THREADS", threads)
    rng = np.random.default_rng(4)
    for opaque in (True, False):
        frame = random_rgba(rng, (700, 300), opaque=opaque)
        pixels = random_rgba(rng, (600, 250))
        pixels[..., 3] *= rng.random((600, 250)) < painted
        expected = frame.copy()
        expected[50:650, 20:270] = blend_over(frame[50:650, 20:270], pixels)
        composite(frame, StepLayer(1, 20, 50, pixels))
        assert np.array_equal(frame, expected)


def test_composite_places_the_layer_at_its_offset():
    frame = np.zeros((10, 20, 4), np.uint8)
    frame[..., 3] = 255
    paint = np.full((3, 4, 4), 200, np.uint8)
    paint[..., 3] = 255
    composite(frame, StepLayer(1, x=5, y=2, pixels=paint))
    assert np.all(frame[2:5, 5:9, :3] == 200)
    assert frame[..., 0].sum() == 200 * 12


def test_a_layer_outside_the_canvas_is_refused():
    frame = np.zeros((10, 10, 4), np.uint8)
    with pytest.raises(PaintError, match="outside"):
        composite(frame, StepLayer(1, x=8, y=8, pixels=np.zeros((4, 4, 4), np.uint8)))


def test_frames_accumulate_layers_in_order():
    start = np.zeros((4, 4, 4), np.uint8)
    start[..., 3] = 255
    red = np.zeros((4, 4, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 255
    blue = np.zeros((2, 2, 4), np.uint8)
    blue[..., 2], blue[..., 3] = 255, 255
    out = list(frames(start, [StepLayer(1, 0, 0, red), StepLayer(2, 1, 1, blue)]))
    assert len(out) == 2
    assert tuple(out[0][0, 0]) == (255, 0, 0, 255)
    assert tuple(out[1][1, 1]) == (0, 0, 255, 255) and tuple(out[1][0, 0]) == (255, 0, 0, 255)
    assert tuple(start[0, 0]) == (0, 0, 0, 255)


def test_crop_to_paint_trims_clear_borders():
    pixels = np.zeros((10, 10, 4), np.uint8)
    pixels[3:5, 6:9, 3] = 9
    cropped, x, y = crop_to_paint(pixels, 100, 200)
    assert cropped.shape == (2, 3, 4) and (x, y) == (106, 203)
    empty, _, _ = crop_to_paint(np.zeros((5, 5, 4), np.uint8), 0, 0)
    assert empty.size == 0


def test_thumbnail_keeps_proportions_and_small_frames():
    frame = np.zeros((300, 1200, 4), np.uint8)
    assert thumbnail(frame).shape == (64, 256, 4)
    assert thumbnail(frame[:10, :20]).shape == (10, 20, 4)


@pytest.mark.parametrize("steps", [0, -1, MAX_STEPS + 1, 10_000])
def test_step_counts_out_of_range_are_refused(astronaut, steps):
    with pytest.raises(PaintError, match=f"between 1 and {MAX_STEPS}"):
        PaintRequest(astronaut, steps=steps).validate()


def test_an_empty_mask_is_refused(astronaut):
    mask = np.zeros(astronaut.shape[:2], bool)
    with pytest.raises(PaintError, match="mask is empty"):
        PaintRequest(astronaut, mask=mask).validate()


def test_target_of_another_size_is_refused_by_the_model(astronaut):
    with pytest.raises(PaintError, match="same size"):
        PaintRequest(astronaut, target=astronaut[:50]).validate()


def test_reconstruct_starts_on_paper(astronaut):
    assert np.all(PaintRequest(astronaut).first_frame() == 255)
    clear = astronaut.copy()
    clear[:10, :10, 3] = 0
    assert np.all(PaintRequest(clear).first_frame()[..., 3] == 0)
    tinted = PaintRequest(astronaut, paper="#f4ecd8").first_frame()
    assert tuple(tinted[0, 0]) == (0xF4, 0xEC, 0xD8, 255)
    with pytest.raises(PaintError, match="paper"):
        PaintRequest(astronaut, paper="plaid").validate()


def test_semi_to_complete_starts_on_the_canvas(astronaut):
    start = astronaut.copy()
    start[:, 64:] = 0
    request = PaintRequest(start, target=astronaut)
    assert np.array_equal(request.first_frame(), start)
    assert request.goal is astronaut


@pytest.mark.parametrize("shape", [(300, 1200), (1030, 770), (100, 90)])
def test_a_thumbnail_kept_up_to_date_matches_one_made_afresh(shape):
    rng = np.random.default_rng(3)
    frame = random_rgba(rng, shape)
    kept = Thumbnail(frame)
    for _ in range(3):
        y0, x0 = rng.integers(0, shape[0] - 10), rng.integers(0, shape[1] - 10)
        y1, x1 = rng.integers(y0 + 1, shape[0] + 1), rng.integers(x0 + 1, shape[1] + 1)
        frame[y0:y1, x0:x1] = random_rgba(rng, (y1 - y0, x1 - x0))
        assert np.array_equal(kept.update(frame, x0, y0, x1, y1), thumbnail(frame))


def test_premultiplied_is_pillows_rgba_for_pictures_and_pixel_lists():
    rng = np.random.default_rng(3)
    picture = random_rgba(rng, (40, 30))
    pillow = np.asarray(Image.fromarray(picture, "RGBA").convert("RGBa"))
    assert np.array_equal(premultiplied(picture), pillow)
    assert np.array_equal(premultiplied(picture.reshape(-1, 4)), pillow.reshape(-1, 4))
    exact = np.rint(picture[..., :3] * (picture[..., 3:] / 255.0))
    assert np.array_equal(premultiplied(picture)[..., :3], exact)
    opaque = random_rgba(rng, (5, 5), opaque=True)
    assert premultiplied(opaque) is opaque


def test_solve_over_gives_paint_that_composited_reaches_the_wanted_pixel():
    rng = np.random.default_rng(5)
    below = random_rgba(rng, (2000,))
    below[:, 3] = np.where(below[:, 3] > 200, 255, below[:, 3])  # nearly opaque: ill-posed
    laid = random_rgba(rng, (2000,))
    laid[:, 3] = np.maximum(laid[:, 3], 64)
    wanted = blend_over(below[None], laid[None])[0]  # reachable by construction
    paint = solve_over(below, wanted)
    reached = reference_over(below.astype(float), paint.astype(float))
    assert np.abs(reached[:, 3] - wanted[:, 3]).max() <= 1
    assert np.abs(reached[:, :3] - wanted[:, :3]).max() <= 3
    opaque = solve_over(below, random_rgba(rng, (2000,), opaque=True))
    assert (opaque[:, 3] == 255).all()

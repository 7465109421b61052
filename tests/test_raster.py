"""The strokes engine's pixel maths over bands of rows on several threads: the same numbers as
on the whole picture at once."""

import numpy as np
import pytest
from paintstep.model.raster import (
    cell_max,
    colour_distance,
    gaussian_blur,
    pixel_difference,
    squared_distance,
)
from PIL import Image, ImageFilter


@pytest.fixture
def pictures(monkeypatch):
    monkeypatch.setenv("PAINTSTEP_THREADS", "3")
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (2, 900, 333, 4), np.uint8)


def test_distances_on_bands_are_the_whole_pictures_distances(pictures):
    a, b = pictures
    signed = a.astype(np.int64) - b
    assert np.array_equal(pixel_difference(a, b), np.abs(signed).max(axis=2))
    assert np.array_equal(squared_distance(a, b), (signed**2).sum(axis=2))
    expected = np.sqrt((signed**2).sum(axis=2)) / 255
    assert np.allclose(colour_distance(a, b), expected, atol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_a_blur_on_bands_is_the_blur_of_the_whole_picture(pictures, sigma):
    image = pictures[0]
    whole = np.asarray(Image.fromarray(image, "RGBa").filter(ImageFilter.GaussianBlur(sigma)))
    assert np.array_equal(gaussian_blur(image, sigma), whole)


def test_cell_max_is_the_largest_value_of_each_cell():
    values = np.random.default_rng(1).integers(0, 1000, (37, 50))
    cells = cell_max(values, 8)
    assert cells.shape == (5, 7)
    assert cells[4, 6] == values[32:, 48:].max() and cells[1, 2] == values[8:16, 16:24].max()


@pytest.mark.parametrize("alpha", [0, 120, 254, 255])
def test_a_glaze_moves_a_pixel_half_way_to_the_goal_however_opaque_it_is(alpha):
    # A stroke's soft edge on a transparent start leaves pixels at 250-254: "over" cannot
    # change their colour unless the glaze brings their opacity along.
    from paintstep.model.raster import glaze_layer
    from paintstep.process import StepLayer, composite

    frame = np.array([[[180, 60, 30, alpha]]], np.uint8)
    goal = np.array([[[60, 160, 200, 255]]], np.uint8)

    def seen(pixel):  # how the pixel looks on white paper
        a = pixel[3] / 255
        return pixel[:3].astype(float) * a + 255 * (1 - a)

    before = seen(frame[0, 0])
    layer = np.zeros((1, 1, 4), np.uint8)
    glaze_layer(layer, 0, 0, frame, goal, np.ones((1, 1), bool), 16, halfway=True)
    composite(frame, StepLayer(1, 0, 0, layer))
    assert np.all(np.abs(seen(frame[0, 0]) - (before + goal[0, 0, :3]) / 2) <= 2)
    assert frame[0, 0, 3] >= max(alpha, 127)
    if alpha >= 128:
        assert frame[0, 0, 3] == 255  # opaque again, at the colour half way

"""Flat illustrations made for the tests: flat-coloured shapes with dark outlines."""

from __future__ import annotations

import numpy as np


def outlined(picture: np.ndarray, shapes: list[np.ndarray], ink=(30, 25, 30)) -> np.ndarray:
    """The picture with a 1 px dark outline around each of the (H, W) bool shapes."""
    edge = np.zeros(picture.shape[:2], bool)
    for shape in shapes:
        edge |= shape ^ np.roll(shape, 1, 0) | shape ^ np.roll(shape, 1, 1)
    picture[edge] = (*ink, 255)
    return picture


def drawing(width: int = 160) -> np.ndarray:
    """A red disc (its lower part in shadow) and a blue box on cream paper, outlined."""
    height = width * 3 // 4
    picture = np.zeros((height, width, 4), np.uint8)
    picture[...] = (236, 228, 206, 255)
    yy, xx = np.mgrid[:height, :width]
    disc = (xx - width * 0.35) ** 2 + (yy - height * 0.5) ** 2 < (height * 0.3) ** 2
    box = (abs(xx - width * 0.72) < width * 0.15) & (abs(yy - height * 0.45) < height * 0.3)
    picture[disc] = (200, 60, 50, 255)
    picture[box] = (60, 110, 190, 255)
    picture[disc & (yy > height * 0.55)] = (150, 40, 40, 255)  # its shadow
    return outlined(picture, [disc, box])


def poster(width: int = 160) -> np.ndarray:
    """A landscape poster: sky, a yellow sun, a white cloud, white paper between the sky and
    two green hills, a brown house with a red roof, each outlined where it shows."""
    height = width * 3 // 4
    yy, xx = np.mgrid[:height, :width]
    colours = [
        (255, 255, 255),
        (150, 200, 235),
        (250, 210, 60),
        (255, 255, 255),
        (110, 170, 80),
        (60, 120, 50),
        (150, 100, 60),
        (190, 50, 40),
    ]
    shapes = [
        yy < height * 0.55,  # the sky
        (xx - width * 0.8) ** 2 + (yy - height * 0.2) ** 2 < (height * 0.11) ** 2,  # the sun
        ((xx - width * 0.3) / 2.2) ** 2 + (yy - height * 0.18) ** 2 < (height * 0.07) ** 2,
        yy > height * 0.5 + height * 0.12 * np.sin(xx / width * 5),  # the far hill
        yy > height * 0.72 - height * 0.1 * np.cos(xx / width * 4 + 1),  # the near hill
        (abs(xx - width * 0.55) < width * 0.1) & (abs(yy - height * 0.62) < height * 0.1),
        (yy < height * 0.52)
        & (yy > height * 0.38)
        & (abs(xx - width * 0.55) < (yy - height * 0.38) * 1.1),  # the roof
    ]
    label = np.zeros((height, width), np.int64)
    for number, shape in enumerate(shapes, 1):
        label[shape] = number  # later shapes in front
    picture = np.empty((height, width, 4), np.uint8)
    picture[..., :3] = np.array(colours, np.uint8)[label]
    picture[..., 3] = 255
    regions = [label == number for number in range(1, len(shapes) + 1)]
    return outlined(picture, regions)

"""Pictures for the tests, made here: scikit-image's bundled photos, resized."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data


def photo(name: str = "astronaut", width: int = 128) -> np.ndarray:
    """A bundled photo as (H, W, 4) uint8 RGBA, `width` px wide."""
    image = Image.fromarray(getattr(data, name)()).convert("RGBA")
    height = round(width * image.height / image.width)
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS)).copy()


def half_finished(target: np.ndarray) -> np.ndarray:
    """The target with its right half replaced by a blurred block-in, as a painter leaves it."""
    width = target.shape[1]
    sigma = max(2.0, width / 16)
    blurred = np.asarray(Image.fromarray(target).filter(ImageFilter.GaussianBlur(sigma)))
    start = target.copy()
    start[:, width // 2 :] = blurred[:, width // 2 :]
    return start


def painted(folder, name: str, width: int, steps: int):
    """A result folder painted by `paintstep paint` from a bundled photo; its path."""
    from paintstep.cli import main

    picture = folder / "p.png"
    Image.fromarray(photo(name, width)).save(picture)
    out = folder / "out"
    assert main(["paint", str(picture), "--steps", str(steps), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture
def astronaut() -> np.ndarray:
    return photo("astronaut", 128)


@pytest.fixture
def coffee() -> np.ndarray:
    return photo("coffee", 120)

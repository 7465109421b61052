"""How a painting process measures up: the figures the tests and the benchmarks check.

Colours are compared as painted on white paper, so transparency counts as what a viewer sees.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) float64 colours of straight RGBA shown over white paper."""
    alpha = rgba[..., 3:].astype(np.float64) / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two RGBA pictures (inf when equal)."""
    error = np.mean((on_white(a) - on_white(b)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def structure_scale(width: int, height: int) -> float:
    """The blur (sigma, px) that keeps a picture's large shapes and colours only."""
    return max(width, height) / 32


def blurred(rgba: np.ndarray, sigma: float) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(on_white(rgba)), 0, 255).astype(np.uint8), "RGB")
    return np.asarray(image.filter(ImageFilter.GaussianBlur(sigma))).astype(np.float64)


def structure_error(frame: np.ndarray, target: np.ndarray) -> float:
    """Mean colour error of the large shapes: both pictures blurred to the structure scale."""
    sigma = structure_scale(frame.shape[1], frame.shape[0])
    return float(np.abs(blurred(frame, sigma) - blurred(target, sigma)).mean())


def detail_error(frame: np.ndarray, target: np.ndarray) -> float:
    """Mean error of the fine detail: what a 2 px blur takes out of each picture."""
    detail_frame = on_white(frame) - blurred(frame, 2.0)
    detail_target = on_white(target) - blurred(target, 2.0)
    return float(np.abs(detail_frame - detail_target).mean())


def changed_fraction(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the canvas's pixels that differ between two frames."""
    return float(np.any(before != after, axis=2).mean())

"""Pictures for the tests, made here: scikit-image's bundled photos, resized."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from starts import blur

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread of torch and BLAS per worker: the workers already fill the cores, and OpenMP's
    # waiting threads on a busy core made some diffusion tests four times slower (120 s, not 30).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


# Python code that makes importing numpy fail, as in Krita's Python: put before a test's code.
NO_NUMPY = (
    "import sys\n"
    "class NoNumpy:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'numpy' or name.startswith('numpy.'):\n"
    "            raise ImportError('no numpy here')\n"
    "sys.meta_path.insert(0, NoNumpy())\n"
)


def photo(name: str = "astronaut", width: int = 128) -> np.ndarray:
    """A bundled photo as (H, W, 4) uint8 RGBA, `width` px wide."""
    image = Image.fromarray(getattr(data, name)()).convert("RGBA")
    height = round(width * image.height / image.width)
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS)).copy()


def half_finished(target: np.ndarray) -> np.ndarray:
    """The target with its right half replaced by a blurred block-in, as a painter leaves it
    (the "blur" start; tests/starts.py has the other kinds)."""
    return blur(target)


def painted(folder, name: str, width: int, steps: int, *more: str):
    """A result folder painted by `paintstep paint` from a bundled photo (with `more` of its
    arguments); its path."""
    from paintstep.cli import main

    picture = folder / "p.png"
    Image.fromarray(photo(name, width)).save(picture)
    out = folder / "out"
    command = ["paint", str(picture), "--steps", str(steps), "--out", str(out), "-q", *more]
    assert main(command) == 0
    return out


def diffusion_weights(root):
    """Tiny SD1.5, motion adapter and control net with random weights, saved with
    save_pretrained, a style LoRA saved as diffusers writes LoRAs ("watercolour"), and the
    diffusion.json that lists them (device cpu); its path. Needs the diffusion extra."""
    import json

    import torch
    from diffusers import StableDiffusionPipeline
    from paintstep.model import random_models
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    parts = random_models.build(random_models.TINY)
    random_models.save_base(parts, root / "sd15")
    parts["motion_adapter"].save_pretrained(root / "motion")
    parts["controlnet"].save_pretrained(root / "control")
    unet = parts["unet"]
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]),
        adapter_name="style",
    )
    random_models.stir(unet, torch.Generator().manual_seed(1), scale=0.3)
    StableDiffusionPipeline.save_lora_weights(
        root / "loras",
        unet_lora_layers=get_peft_model_state_dict(unet, adapter_name="style"),
        weight_name="watercolour.safetensors",
    )
    config = root / "diffusion.json"
    entries = {"base": "sd15", "motion": "motion", "control": "control", "loras": "loras"}
    config.write_text(json.dumps({**entries, "device": "cpu"}))
    return config


@pytest.fixture(scope="session")
def krita_resources(tmp_path_factory):
    """Krita's resource folder, made by one Krita start for the whole run and shared by its
    workers (tests/krita/plugin_setup.resources); None where Krita could not make it."""
    folder = str(Path(__file__).resolve().parent / "krita")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import plugin_setup

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's own folder, above each worker's
    return plugin_setup.resources(root / "krita-resources")


@pytest.fixture
def astronaut() -> np.ndarray:
    return photo("astronaut", 128)


@pytest.fixture
def coffee() -> np.ndarray:
    return photo("coffee", 120)


def pytest_collection_modifyitems(config, items) -> None:
    """The slow tests first (Krita, the installer): spread over the workers from the start,
    the workers end together instead of one running a two-minute install alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

"""The diffusion engine's weights: which files it loads, as listed in its config file.

`diffusion.json` (in Paintstep's config folder, or the file $PAINTSTEP_DIFFUSION_CONFIG or
`paintstep serve --diffusion-config` names) lists the base model, the motion module, the control
net and the LoRA folder. Reading and checking it needs no torch: the engine says what is missing
before anything loads. Both the engine (`diffusion.py`) and the models (`video.py`) use it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from paintstep.process import PaintError
from paintstep.wire import paths

CONFIG_ENV = "PAINTSTEP_DIFFUSION_CONFIG"
CONFIG_NAME = "diffusion.json"

EXAMPLE = """{
  "base": "stable-diffusion-v1-5",
  "motion": "animatediff-motion-adapter-v1-5-3",
  "control": "animatediff-sparsectrl-rgb",
  "loras": "loras",
  "device": "auto"
}"""


def config_path() -> Path:
    """Where the diffusion engine's weights are listed: $PAINTSTEP_DIFFUSION_CONFIG, or
    diffusion.json in Paintstep's config folder."""
    return Path(os.environ.get(CONFIG_ENV) or paths.config_dir() / CONFIG_NAME)


@dataclass(frozen=True)
class Weights:
    """The weights the diffusion engine loads, as listed in its config file.

    base: Stable Diffusion 1.5 (or a fine-tune): a diffusers folder, or one .safetensors/.ckpt
    file together with `base_config`, a diffusers folder whose configs describe it. motion: a
    MotionAdapter folder, or an AnimateDiff / ProcessPainter motion module file. control: a
    SparseControlNetModel folder, or a SparseCtrl RGB file (processpainter: true when it is
    ProcessPainter's; its motion files are recognised alone). adapter: AnimateDiff's domain
    adapter (v3_sd15_adapter.ckpt), merged into the spatial layers at `adapter_scale`, as
    ProcessPainter trains and runs with it. loras: a folder of LoRA files. Relative paths are
    read from the config file's folder.
    """

    config: Path
    base: Path | None = None
    base_config: Path | None = None
    motion: Path | None = None
    control: Path | None = None
    adapter: Path | None = None
    adapter_scale: float = 1.0
    loras: Path | None = None
    device: str = "auto"
    processpainter: bool = False  # the control file is ProcessPainter's (see convert.py)

    def check(self, mode: str, lora: str) -> None:
        """A PaintError naming what is missing and where it goes, before anything loads."""
        self.need("base", "Stable Diffusion 1.5 (a diffusers folder or a .safetensors file)")
        if self.base is not None and self.base.is_file():
            self.need("base_config", "a diffusers folder with the configs of the base model")
        if mode == "video":
            self.need("motion", "the motion module (e.g. animatediff-motion-adapter-v1-5-3)")
            self.need("control", "the sparse control net (e.g. animatediff-sparsectrl-rgb)")
            if self.adapter is not None:
                self.need("adapter", "AnimateDiff's domain adapter (v3_sd15_adapter.ckpt)")
        if lora:
            lora_file(self, lora)

    def need(self, key: str, what: str) -> None:
        value = getattr(self, key)
        if value is None:
            raise PaintError(
                f'The diffusion engine needs "{key}": {what}. Name it in {self.config}.'
            )
        if not value.exists():
            raise PaintError(
                f'The diffusion engine found no "{key}" at {value}: put {what} there, or '
                f"correct the path in {self.config}."
            )


# Keys of this file that the paints-undo engine reads (model/undo/weights.py), not this one.
PAINTS_UNDO_KEYS = frozenset({"paints_undo_single_frame", "paints_undo_multi_frame"})


def read_config(path: Path) -> dict:
    """The weights list at `path` as a JSON object, with its "device" checked."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise PaintError(f"{path} is not a readable JSON object ({error}); fix it.") from None
    device = raw.get("device", "auto")
    if device not in ("auto", "cpu", "cuda", "mps") and not str(device).startswith("cuda:"):
        raise PaintError(f'{path}: "device" must be auto, cpu, cuda, cuda:N or mps.')
    return raw


def load_weights(path: Path | None = None) -> Weights:
    path = path or config_path()
    if not path.is_file():
        raise PaintError(
            f"The diffusion engine needs model weights on this machine, listed in {path}. "
            f"Write that file as JSON, for example: {' '.join(EXAMPLE.split())}; "
            "docs/diffusion.md says where to get each."
        )
    raw = read_config(path)
    settings = {"device", "processpainter", "adapter_scale"}
    known = {"base", "base_config", "motion", "control", "adapter", "loras"} | settings
    unknown = sorted(set(raw) - known - PAINTS_UNDO_KEYS)
    if unknown:
        raise PaintError(
            f"{path} names {', '.join(unknown)}, which the diffusion engine does not know; "
            f"it reads: {', '.join(sorted(known))} (and paints-undo: "
            f"{', '.join(sorted(PAINTS_UNDO_KEYS))})."
        )
    device = raw.get("device", "auto")
    processpainter = raw.get("processpainter", False)
    if not isinstance(processpainter, bool):
        raise PaintError(f'{path}: "processpainter" must be true or false.')
    scale = raw.get("adapter_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 2:
        raise PaintError(f'{path}: "adapter_scale" must be a number from 0 to 2.')
    found = {
        key: path.parent / Path(str(raw[key])).expanduser() if raw.get(key) else None
        for key in known - settings
    }
    return Weights(
        config=path,
        device=device,
        processpainter=processpainter,
        adapter_scale=float(scale),
        **found,
    )


def lora_file(weights: Weights, name: str) -> Path:
    """The LoRA file called `name` in the loras folder."""
    if weights.loras is None:
        raise PaintError(
            f'The LoRA {name!r} was asked for, but {weights.config} names no "loras" folder.'
        )
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or ".." in name:
        raise PaintError(f"A LoRA name has letters, digits, - _ and . only, not {name!r}.")
    for suffix in (".safetensors", ".bin"):
        candidate = weights.loras / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    if (weights.loras / name / "adapter_model.safetensors").is_file():
        return weights.loras / name
    known = sorted(p.stem for p in weights.loras.glob("*.safetensors"))
    raise PaintError(
        f"There is no LoRA {name!r}: put {name}.safetensors into {weights.loras} "
        f"(there: {', '.join(known) or 'none'})."
    )

"""Where Paints-UNDO's released weights are: two keys of the diffusion engine's weights list.

`diffusion.json` (or the file $PAINTSTEP_DIFFUSION_CONFIG or `paintstep serve --diffusion-config`
names) may list, besides the diffusion engine's files, the two folders Paints-UNDO releases on
Hugging Face, as they download:

    "paints_undo_single_frame": "paints_undo_single_frame",
    "paints_undo_multi_frame": "paints_undo_multi_frame"

Reading and checking them needs no torch, so the engine is listed only where they are named and
says what is missing before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paintstep.process import PaintError

from ..weights import config_path, read_config

SINGLE_KEY, MULTI_KEY = "paints_undo_single_frame", "paints_undo_multi_frame"
# The files each released folder holds, as Paints-UNDO's gradio_app.py and
# diffusers_vdm/pipeline.py load them (diffusers, transformers and PyTorchModelHubMixin layouts).
SINGLE_FILES = (
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer",
)
MULTI_FILES = (
    "unet/config.json",
    "unet/model.safetensors",
    "vae/config.json",
    "vae/model.safetensors",
    "image_projection/config.json",
    "image_projection/model.safetensors",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "image_encoder/config.json",
    "image_encoder/model.safetensors",
    "tokenizer",
)
EXAMPLE = f'{{"{SINGLE_KEY}": "{SINGLE_KEY}", "{MULTI_KEY}": "{MULTI_KEY}", "device": "auto"}}'


@dataclass(frozen=True)
class UndoWeights:
    """The two released folders (None where the list names none) and the device to run on."""

    config: Path
    single_frame: Path | None = None
    multi_frame: Path | None = None
    device: str = "auto"

    def check(self, multi_frame: bool) -> None:
        """A PaintError naming the first missing file and where it goes, before any loading."""
        self.need(SINGLE_KEY, self.single_frame, SINGLE_FILES)
        if multi_frame:
            self.need(MULTI_KEY, self.multi_frame, MULTI_FILES)

    def need(self, key: str, folder: Path | None, files: tuple[str, ...]) -> None:
        repository = f"lllyasviel/{key}"
        if folder is None:
            raise PaintError(
                f'The paints-undo engine needs "{key}": the folder of {repository} from Hugging '
                f"Face. Name it in {self.config}."
            )
        for name in files:
            if not (folder / name).exists():
                raise PaintError(
                    f'The paints-undo engine found no {name} in "{key}" ({folder}): download '
                    f"{repository} there as it is on Hugging Face, or correct the path in "
                    f"{self.config}."
                )


def load_undo_weights(path: Path | None = None) -> UndoWeights:
    path = path or config_path()
    if not path.is_file():
        raise PaintError(
            f"The paints-undo engine needs Paints-UNDO's weights on this machine, listed in "
            f"{path}. Write that file as JSON, for example: {EXAMPLE}; docs/paints-undo.md "
            "says where to get them."
        )
    raw = read_config(path)
    found = {
        key: path.parent / Path(str(raw[key])).expanduser() if raw.get(key) else None
        for key in (SINGLE_KEY, MULTI_KEY)
    }
    return UndoWeights(
        config=path,
        single_frame=found[SINGLE_KEY],
        multi_frame=found[MULTI_KEY],
        device=raw.get("device", "auto"),
    )


def configured(weights_config: Path | None = None) -> bool:
    """Whether the weights list names Paints-UNDO's weights (the engine is listed only then)."""
    try:
        return load_undo_weights(weights_config).single_frame is not None
    except PaintError:
        return False

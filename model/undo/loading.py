"""Strict loading of Paints-UNDO's released safetensors: every key of the file goes into the
model and every weight of the model comes from the file, or the error names what differs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from paintstep.process import PaintError

# Keys older transformers wrote that are not weights (the positions 0..76, rebuilt on load).
NOT_WEIGHTS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise PaintError(
            f"Could not read {path} ({error}); download it again from Paints-UNDO's release."
        ) from None
    return config


def built_empty(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The model `build` makes, its parameters not yet allocated (they come from the file)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return build()


def load_strictly(
    model: torch.nn.Module, path: Path, what: str, strip: str = ""
) -> torch.nn.Module:
    """`model` with every weight from the safetensors file at `path` (a PaintError naming the
    missing, left-over or misshapen keys otherwise); `strip` is a prefix the file's keys have
    and the model's do not."""
    from safetensors.torch import load_file

    with reading(path, what):
        state = load_file(str(path))
    for key in NOT_WEIGHTS:
        state.pop(key, None)
    if strip:
        state = {k.removeprefix(strip): v for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    misshapen = sorted(
        key for key in set(state) & set(expected) if state[key].shape != expected[key].shape
    )
    problems = []
    for words, keys in (("lacks", missing), ("has unexpected", extra)):
        if keys:
            problems.append(f"{words} {len(keys)} keys ({', '.join(keys[:3])})")
    if misshapen:
        key = misshapen[0]
        problems.append(
            f"has {len(misshapen)} of another shape ({key}: {tuple(state[key].shape)} where "
            f"{tuple(expected[key].shape)} was expected)"
        )
    if problems:
        raise PaintError(
            f"{path} is not {what} as Paints-UNDO releases it: it {'; it '.join(problems)}. "
            "Download the folder again from its Hugging Face repository."
        )
    dtype = next(iter(expected.values())).dtype
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    try:
        yield
    except PaintError:
        raise
    except Exception as error:  # safetensors and the tokenizers raise their own kinds
        raise PaintError(
            f"Could not load {what} from {path} ({str(error).splitlines()[0][:200]}); download "
            "it again from Paints-UNDO's release."
        ) from None

"""Synthetic painting processes: the strokes engine paints pictures from blank paper, with
step counts, options and seeds varied per picture, kept as the recorded ones are."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..engines import get_engine
from ..images import load_rgba
from ..process import PaintRequest, composite
from ..wire.errors import PaintError
from .keyframes import WORK_SIDE, choose_keyframes, keep_frames
from .real import sample_size
from .shards import Sample
from .sources import PICTURES, Warn, safe_key


def parse_shard(text: str) -> tuple[int, int]:
    """--shard I/N: part I (0 to N-1) of N."""
    index, slash, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not slash or n < 1 or not 0 <= i < n:
        raise PaintError(f"--shard is I/N, part I (0 to N-1) of N, for example 0/4; not {text!r}.")
    return i, n


def find_pictures(folder: Path) -> list[Path]:
    """The pictures under `folder` (its subfolders too), by their path: the same list on
    every machine."""
    if not folder.is_dir():
        raise PaintError(f"{folder} is not a folder; give the folder of pictures to paint.")
    found = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PICTURES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not found:
        raise PaintError(
            f"{folder} holds no pictures ({', '.join(PICTURES)}); give a folder of pictures."
        )
    return found


def shard_of(pictures: list[Path], shard: tuple[int, int]) -> list[Path]:
    """Part I of N: every Nth picture from the Ith, so that the parts together hold each
    picture once, and are all about as long."""
    index, count = shard
    return pictures[index::count]


def variation(
    name: str, variant: int, seed: int, frames: int, styles: tuple[str, ...] = ()
) -> dict:
    """The steps, options and seed of one synthetic process, fixed by the picture's name, the
    variant and the base seed alone (not by which machine paints it); one of the engine's
    process `styles` too, when it has them."""
    digest = hashlib.sha256(f"{name}\0{variant}\0{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    least = max(frames, 8)
    options = {
        "detail": round(float(rng.uniform(0.5, 1.5)), 2),
        "opacity": round(float(rng.uniform(0.6, 1.0)), 2),
        "jitter": round(float(rng.uniform(0.0, 0.12)), 3),
        "bristles": round(float(rng.uniform(0.3, 1.0)), 2) if rng.random() < 0.4 else 0.0,
    }
    if styles:
        options["style"] = styles[int(rng.integers(len(styles)))]
    return {
        "steps": int(rng.integers(least, 3 * least + 1)),
        "seed": int(rng.integers(0, 2**31)),
        "options": options,
    }


def synth_samples(
    pictures: list[Path],
    root: Path,
    frames: int,
    side: int,
    per_picture: int,
    seed: int,
    warn: Warn,
) -> Iterator[Sample]:
    """The synthetic samples of `pictures` (paths under `root`), `per_picture` each."""
    engine = get_engine("strokes")
    styles = next((o.choices for o in engine.options if o.name == "style"), ())
    for path in pictures:
        name = path.relative_to(root).as_posix()
        try:
            rgba, _ = load_rgba(path, "The picture")
        except PaintError as error:
            warn(f"skipped {path}: {error}")
            continue
        size = sample_size((rgba.shape[1], rgba.shape[0]), side)
        picture = np.asarray(Image.fromarray(rgba, "RGBA").resize(size, Image.Resampling.LANCZOS))
        picture = over_white(picture)
        for variant in range(per_picture):
            chosen = variation(name, variant, seed, frames, styles)
            yield painted(engine, picture, name, variant, chosen, frames)


def painted(
    engine, picture: np.ndarray, name: str, variant: int, chosen: dict, frames: int
) -> Sample:
    request = PaintRequest(
        canvas=picture,
        steps=chosen["steps"],
        seed=chosen["seed"],
        options={k: str(v) for k, v in chosen["options"].items()},
    )
    frame = request.first_frame()
    shown = [frame[..., :3].copy()]
    for layer in engine.paint(request):
        composite(frame, layer)
        shown.append(frame[..., :3].copy())
    work = sample_size(picture.shape[1::-1], WORK_SIDE)
    smalls = [np.asarray(Image.fromarray(f).resize(work, Image.Resampling.BOX)) for f in shown]
    kept, dropped = keep_frames(smalls)
    picked, reached = choose_keyframes([smalls[i] for i in kept], frames)
    steps = [kept[i] for i in picked]
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]  # unique where stems repeat
    key = f"synth_{digest}_{variant}_{safe_key(Path(name).stem)}"
    meta = {
        "kind": "synth",
        "source": name,
        "size": list(picture.shape[1::-1]),
        "engine": "strokes",
        **chosen,
        "keyframes": [{"step": s, "change": r} for s, r in zip(steps, reached)],
        "dropped": dropped,
    }
    return Sample(key, [shown[s] for s in steps], "", meta)


def over_white(rgba: np.ndarray) -> np.ndarray:
    """An opaque RGBA picture: its transparency shown over white paper."""
    paper = Image.new("RGBA", rgba.shape[1::-1], (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(paper, Image.fromarray(rgba, "RGBA"))).copy()

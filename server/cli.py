"""The `paintstep` command."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from . import __version__
from .engines import DEFAULT_ENGINE, engine_names, get_engine
from .images import fit_to, load_mask, load_rgba
from .process import MAX_STEPS, PaintError, PaintRequest, composite
from .result import ResultWriter, check_folder

SAMPLE = "coffee.jpg"

PAINT_HELP = """\
Paint the rest of a picture's process: from START to the target, as step layers.

With --target, the process goes from START (a half-finished canvas) to the target, and the parts
of START that already match the target stay untouched. Without it, the process paints START from
blank paper. The folder --out receives:
  layers/step_NNNN.png  the paint of each step (its place is in manifest.json)
  frames/frame_NNNN.png every frame, frame 0 being the start
  process.gif, process.mp4, manifest.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paintstep",
        description="Paintstep: see how a picture gets finished, step by step, as layers.",
    )
    parser.add_argument("--version", action="version", version=f"paintstep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    paint = commands.add_parser(
        "paint",
        help="paint a picture's process into a folder",
        description=PAINT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    paint.add_argument(
        "start", nargs="?", metavar="START", help="the canvas as it is now (PNG, JPEG, ...)"
    )
    paint.add_argument("--sample", action="store_true", help="paint the bundled sample picture")
    paint.add_argument("--target", metavar="T", help="the finished picture to paint towards")
    paint.add_argument(
        "--mask", metavar="M", help="paint only where this picture is white (or opaque)"
    )
    paint.add_argument(
        "--steps", type=int, default=16, metavar="N", help=f"number of steps, 1-{MAX_STEPS} (16)"
    )
    paint.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    paint.add_argument("--out", default="out", metavar="DIR", help="folder for the result (out)")
    paint.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        choices=engine_names(),
        help=f"what paints the steps ({DEFAULT_ENGINE})",
    )
    paint.add_argument(
        "--paper",
        metavar="COLOUR",
        help="blank paper to start from without --target: white, transparent or #rrggbb "
        "(white, or transparent when START has transparency)",
    )
    paint.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an engine option; see `paintstep engines`",
    )
    paint.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    paint.set_defaults(run=run_paint)

    engines = commands.add_parser("engines", help="list the engines and their options")
    engines.set_defaults(run=run_engines)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except PaintError as error:
        print(f"paintstep: {error}", file=sys.stderr)
        return 2


def run_engines(args: argparse.Namespace) -> int:
    for name in engine_names():
        engine = get_engine(name)
        print(f"{name}: {engine.description}")
        for option in engine.options:
            bounds = f" ({option.minimum}-{option.maximum})" if option.minimum is not None else ""
            print(f"  {option.name}={option.default}{bounds}  {option.help}")
    return 0


def run_paint(args: argparse.Namespace) -> int:
    notices: list[str] = []
    if args.sample:
        if args.start:
            raise PaintError("Give either START or --sample, not both.")
        start_path = resources.files("paintstep").joinpath("samples", SAMPLE)
    elif args.start:
        start_path = args.start
    else:
        raise PaintError("Give the picture to paint (START), or --sample for the bundled one.")
    canvas, more = load_rgba(Path(str(start_path)), "The canvas")
    notices += more
    size = (canvas.shape[1], canvas.shape[0])
    target = None
    if args.target:
        target, more = load_rgba(args.target, "The target")
        notices += more
        target, more = fit_to(target, size, "The target")
        notices += more
    mask = None
    if args.mask:
        mask, more = load_mask(args.mask, size)
        notices += more
    request = PaintRequest(
        canvas=canvas,
        target=target,
        mask=mask,
        steps=args.steps,
        seed=args.seed,
        paper=args.paper,
        options=parse_options(args.option),
    )
    engine = get_engine(args.engine)
    request.validate()
    engine.settings(request)
    for notice in notices:
        print(f"paintstep: {notice}", file=sys.stderr)

    out = Path(args.out)
    frame = request.first_frame()
    info = {"engine": engine.name, "seed": request.seed, "steps_planned": request.steps}
    info["options"] = engine.settings(request)
    cancel = threading.Event()
    progress = Progress(request.steps, sys.stderr, enabled=not args.quiet)
    began = time.perf_counter()
    check_folder(out)
    steps = engine.paint(request, cancel)
    writer = None
    try:
        for step in steps:
            # The folder is written from the first step on, so a request the engine refuses
            # leaves nothing behind.
            writer = writer or ResultWriter(out, frame, info)
            composite(frame, step)
            writer.add(step, frame)
            progress.update(step.index)
        progress.update(request.steps, "writing the animation")
        writer.finish()
    except KeyboardInterrupt:
        cancel.set()
        progress.close()
        print(f"paintstep: stopped; {out} holds an incomplete result.", file=sys.stderr)
        return 130
    progress.close()
    if not args.quiet:
        seconds = time.perf_counter() - began
        print(f"Painted {request.steps} steps in {seconds:.1f} s into {out}/")
        print(f"  {out / 'process.gif'}  {out / 'process.mp4'}  {out / 'layers'}/")
    return 0


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise PaintError(
                f"Write engine options as NAME=VALUE, for example detail=2, not {pair!r}."
            )
        options[name.strip()] = value.strip()
    return options


class Progress:
    """A one-line progress bar on a terminal; silent when the output is not one."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.began = time.perf_counter()

    def update(self, done: int, doing: str = "") -> None:
        if not self.enabled:
            return
        width = 30
        filled = round(width * done / self.total)
        seconds = time.perf_counter() - self.began
        label = doing or f"step {done}/{self.total}"
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\rPainting [{bar}] {label}  {seconds:.1f} s\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

"""`paintstep paint`: its options, the pictures it reads, the engine (here or on a server)
painting step by step, and the result folder written as the steps come."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from ..engines import DEFAULT_ENGINE, engine_names, get_engine
from ..images import DEFAULT_MAX_SIDE, fit_to, load_mask, load_rgba
from ..process import MAX_SIDE, MAX_STEPS, THUMBNAIL_SIDE, PaintError, PaintRequest, StepLayer
from ..result import (
    CHECKPOINT_STEPS,
    OUTPUTS,
    JobState,
    ResultWriter,
    check_folder,
    clear_result,
    only_set_up,
    run_info,
)
from ..writer_process import WriterGone, WriterProcess

SAMPLE = "coffee.jpg"
DEFAULT_OUTPUTS = ("thumbs", "gif", "mp4")  # docs/benchmarks.md: what each costs
LARGE_RESULT = 100_000_000  # bytes: a result this large is said before painting

PAINT_HELP = f"""\
Paint the rest of a picture's process: from START to the target, as step layers.

With --target, the process goes from START (a half-finished canvas) to the target, and the parts
of START that already match the target stay untouched. Without it, the process paints START from
blank paper, or, with --complete and an engine that invents (diffusion), goes on from START to a
finished picture of its own. The folder --out (out) receives:
  layers/step_NNNN.png  the paint of each step (its place is in manifest.json; a step that
                        paints nothing has none)
  manifest.json         what the folder holds
and what --outputs names (by default {",".join(DEFAULT_OUTPUTS)}: thumbs/, process.gif/.mp4):
  frames                every frame as frames/frame_NNNN.png; without it, frame 0, every
                        {CHECKPOINT_STEPS}th and the last (the others are rebuilt from the layers)
  thumbs                thumbs/thumb_NNNN.png, each frame small
  gif, mp4              process.gif, process.mp4: the process as an animation
An earlier result in --out is replaced; a folder that holds other files is left alone and
refused.
"""


def add_paint_command(commands) -> None:
    """The `paint` subcommand and its options, on `commands` (the parser's subparsers)."""
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
        "--size",
        choices=("canvas", "target"),
        default="canvas",
        help="with a target of another size: paint at the canvas's size, the target scaled to "
        "it (canvas), or at the target's, the canvas scaled up to it (target)",
    )
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
        choices=engine_names(every=True),
        help=f"what paints the steps ({DEFAULT_ENGINE})",
    )
    paint.add_argument(
        "--paper",
        metavar="COLOUR",
        help="blank paper to start from without --target: a colour name (white, black, ivory), "
        "#rrggbb or transparent (white, or transparent when START has transparency)",
    )
    paint.add_argument(
        "--complete",
        action="store_true",
        help="no target: start on START and let the engine invent the rest (diffusion)",
    )
    paint.add_argument(
        "--prompt", default="", metavar="TEXT", help="what the picture shows (diffusion)"
    )
    paint.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an engine option; see `paintstep engines`",
    )
    paint.add_argument(
        "--server",
        metavar="ADDRESS",
        help="run the job on a Paintstep server, e.g. tcp://127.0.0.1:5571, instead of here",
    )
    paint.add_argument(
        "--keys",
        metavar="DIR",
        help="with --server: a folder with server.key and client.key_secret from `paintstep keys`",
    )
    paint.add_argument(
        "--outputs",
        default=",".join(DEFAULT_OUTPUTS),
        metavar="LIST",
        help="what to write beyond the layers and the manifest: frames, thumbs, gif, mp4, "
        f"comma-separated, or none ({','.join(DEFAULT_OUTPUTS)})",
    )
    paint.add_argument(
        "--max-side",
        type=int,
        default=DEFAULT_MAX_SIDE,
        metavar="PX",
        help=f"largest picture side accepted, px, up to {MAX_SIDE} ({DEFAULT_MAX_SIDE}); "
        "with --server, the server's limit",
    )
    paint.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    paint.set_defaults(run=run_paint)


def run_paint(args: argparse.Namespace) -> int:
    client = None
    try:
        if args.server:
            client = connect(args)  # the server's limits are known before a picture is read
        return paint(args, client)
    finally:
        if client is not None:
            client.close()


def connect(args: argparse.Namespace):
    """A client connected to --server (its welcome holds the server's limits)."""
    from ..wire.client import Client, ServerError, ServerLost
    from ..wire.keys import load_client_keys

    client = Client(args.server, keys=load_client_keys(Path(args.keys)) if args.keys else None)
    try:
        client.connect()
    except (ServerError, ServerLost) as error:
        client.close()
        raise PaintError(str(error)) from None
    return client


def paint(args: argparse.Namespace, client) -> int:
    notices: list[str] = []
    if args.sample:
        if args.start:
            raise PaintError("Give either START or --sample, not both.")
        start_path = resources.files("paintstep").joinpath("samples", SAMPLE)
    elif args.start:
        start_path = args.start
    else:
        raise PaintError("Give the picture to paint (START), or --sample for the bundled one.")
    limit = ""
    if client is not None:
        max_side = client.welcome.get("limits", {}).get("max_side", DEFAULT_MAX_SIDE)
        limit = f"the server at {args.server} takes up to {max_side} px per side"
    elif not 1 <= args.max_side <= MAX_SIDE:
        raise PaintError(f"--max-side is between 1 and {MAX_SIDE} px, not {args.max_side}.")
    else:
        max_side = args.max_side
    canvas, more = load_rgba(Path(str(start_path)), "The canvas", max_side, limit)
    notices += more
    size = (canvas.shape[1], canvas.shape[0])
    target = None
    if args.target:
        target, more = load_rgba(args.target, "The target", max_side, limit)
        notices += more
        if args.size == "target":  # a finished picture larger than its sketch keeps its detail
            size = (target.shape[1], target.shape[0])
            canvas, more = fit_to(canvas, size, "The canvas", other="the target")
        else:
            target, more = fit_to(target, size, "The target")
        notices += more
    elif args.size == "target":
        raise PaintError("--size target paints at the target's size; give --target too.")
    mask = None
    if args.mask:
        mask, more = load_mask(args.mask, size, max_side, limit)
        notices += more
    request = PaintRequest(
        canvas=canvas,
        target=target,
        mask=mask,
        steps=args.steps,
        seed=args.seed,
        paper=args.paper,
        options=parse_options(args.option),
        prompt=args.prompt,
        complete=args.complete,
    )
    outputs = parse_outputs(args.outputs)
    engine = get_engine(args.engine)
    request.validate()
    settings = engine.settings(request)
    if args.paper and target is not None:
        raise PaintError(
            "--paper is the blank start of a picture painted without --target; drop one."
        )
    if args.prompt and not engine.takes_prompt:
        notices.append(f"the {engine.name} engine reads no prompt; it is left out.")
    expected = expected_bytes(canvas.shape[1], canvas.shape[0], request.steps, outputs)
    if expected >= LARGE_RESULT:
        notices.append(
            f"{request.steps} steps of {canvas.shape[1]} x {canvas.shape[0]} px make a result "
            f"of about {expected / 1e6:,.0f} MB in {args.out}/; fewer steps"
            + (", or --outputs none," if outputs else "")
            + " write less."
        )
    if not args.quiet:
        for notice in notices:
            print(f"paintstep: {notice}", file=sys.stderr)

    out = Path(args.out)
    frame = request.first_frame()
    info = run_info(engine.name, request, settings)
    progress = ProgressBar(request.steps, sys.stderr, enabled=not args.quiet)
    check_folder(out)
    # A plain kill (SIGTERM) stops the paint as Ctrl-C does: the result is marked cancelled
    # and the engine's helpers end.
    with terminate_as_interrupt():
        return paint_steps(args, client, request, engine, out, frame, info, outputs, progress)


def paint_steps(args, client, request, engine, out, frame, info, outputs, progress) -> int:
    """Paint the request into `out`, step by step; the command's exit code."""
    cancel = threading.Event()
    began = time.perf_counter()
    # The writer's process starts now, so that its imports overlap the engine's first step.
    process = WriterProcess.start()
    if client is not None:
        steps = remote_steps(args, client, request, cancel, progress)
    else:
        steps = engine.paint(request, cancel, progress.working)
    writer = None
    try:
        for step in steps:
            # The folder is written from the first step on, so a request the engine refuses
            # leaves nothing behind. The writer encodes in a process of its own (or, on one
            # core, a thread) while the engine paints the next step, and composites the
            # frames there too.
            writer = writer or open_writer(process, out, frame, info, outputs)
            writer.add(step)
            progress.update(step.index)
        progress.update(request.steps, "writing the animation")
        writer.finish()
    except KeyboardInterrupt:
        cancel.set()
        close = getattr(steps, "close", None)
        if close is not None:
            close()  # a remote job is cancelled on the server
        progress.close()
        if writer is not None:
            writer.end(JobState.CANCELLED)
            print(f"paintstep: stopped; {out} holds an incomplete result.", file=sys.stderr)
        else:
            if process is not None:  # it may have the folder's "open" still to do
                process.child.kill()
                process.child.wait()
            # Stopped while the writer set the folder up: take away what it had made (an
            # earlier result there, which has its manifest, is left as it was).
            if out.is_dir() and not (out / "manifest.json").exists() and only_set_up(out):
                with contextlib.suppress(OSError):
                    clear_result(out)
                    out.rmdir()
            print("paintstep: stopped before the first step; nothing was written.", file=sys.stderr)
        return 130
    except PaintError as error:
        progress.close()
        if writer is not None:
            with contextlib.suppress(OSError):  # a full disk may refuse the manifest too
                writer.end(JobState.FAILED, str(error))
        raise
    finally:
        if process is not None:
            process.close()
    progress.close()
    if not args.quiet:
        seconds = time.perf_counter() - began
        steps = f"{request.steps} step{'s' if request.steps != 1 else ''}"
        print(f"Painted {steps} in {seconds:.1f} s into {out}/")
        shown = [f"{out / ('process.' + name)}" for name in ("gif", "mp4") if name in outputs]
        print("  " + "  ".join([*shown, f"{out / 'layers'}/"]))
    return 0


def open_writer(process: WriterProcess | None, out: Path, frame, info, outputs):
    """The result's writer: in its own process where one started, else on a thread."""
    if process is not None:
        try:
            return process.open(out, frame, info, outputs)
        except WriterGone:  # (its Python could not start Paintstep: said by its stderr)
            pass
    return ResultWriter(out, frame, info, outputs=outputs, background=True)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt meanwhile (on the main thread, where signals go)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, earlier)


def interrupt(*_) -> None:
    raise KeyboardInterrupt


def remote_steps(
    args: argparse.Namespace,
    client,
    request: PaintRequest,
    cancel: threading.Event,
    progress: ProgressBar,
) -> Iterator[StepLayer]:
    """The steps of a job run on a server through a connected `client`; setting `cancel` (on
    Ctrl-C) cancels the job. While no step has come, `progress` shows the job's place in the
    queue and the stage."""
    from .remote import step_layers

    job = None

    def accepted(event) -> None:
        nonlocal job
        job = event.job
        if event.position > 0:
            progress.working(0.0, f"waiting for {event.position} job(s) ahead")

    def working(event) -> None:
        if event.stage != "painting":
            progress.working(event.done, event.stage)

    def done(event) -> None:
        if event.state != JobState.FINISHED:
            raise PaintError(f"The server ended the job early ({event.state}).")

    def events():
        return client.generate_request(request, engine=args.engine, name=Path(args.out).name)

    try:
        yield from step_layers(events, accepted, working, done)
    finally:
        if cancel.is_set() and job is not None:
            client.cancel(job)


def expected_bytes(width: int, height: int, steps: int, outputs: Sequence[str]) -> int:
    """About how large a result folder gets: per step a layer (a fifth of a raw frame on
    average, measured on photos), a thumbnail and, with "frames", a frame (two fifths)."""
    frame = width * height * 4
    small = min(1.0, THUMBNAIL_SIDE / max(width, height)) ** 2 * frame
    per_step = 0.2 * frame + (0.2 * small if "thumbs" in outputs else 0)
    per_step += 0.4 * frame * (1 if "frames" in outputs else 1 / CHECKPOINT_STEPS)
    return int(steps * per_step)


def parse_outputs(text: str) -> tuple[str, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return ()
    for name in names:
        if name not in OUTPUTS:
            raise PaintError(
                f"--outputs takes {', '.join(OUTPUTS)} (comma-separated) or none, not {name!r}."
            )
    return tuple(names)


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


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the output is not one."""

    def __init__(
        self, total: int, stream: TextIO, enabled: bool = True, title: str = "Painting"
    ) -> None:
        self.total = total
        self.title = title
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.began = time.perf_counter()
        self.reached = 0.0

    def working(self, share: float, stage: str) -> None:
        """What the engine does before its steps come (loading a model, denoising)."""
        self.update(share * self.total, f"{stage} {share:.0%}" if share > 0 else stage)

    def update(self, done: float, doing: str = "") -> None:
        self.reached = max(self.reached, done)  # the bar only moves forward
        if not self.enabled:
            return
        width = 30
        filled = round(width * self.reached / self.total)
        seconds = time.perf_counter() - self.began
        label = doing or f"step {done}/{self.total}"
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.title} [{bar}] {label}  {seconds:.1f} s\033[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

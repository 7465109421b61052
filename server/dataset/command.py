"""`paintstep dataset build|synth|show`: painting processes made into training data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from ..wire.errors import PaintError
from .shards import FORMATS, SHARD_SAMPLES, ShardWriter

FRAMES = 16  # keyframes per process, as the motion module is trained (16 frames)
SIDE = 512  # px, the keyframes' longer side

HELP = """\
Make training data from painting processes (docs/training.md): tar shards in --out, each sample
one process as N keyframes chosen by how much visibly changes between them.
  build SOURCE   real processes: Krita's Recorder folder (one folder per document), a folder of
                 numbered frames, or a video; a caption.txt in a process's folder (VIDEO.txt
                 beside a video) captions it
  synth PICTURES synthetic processes painted by the strokes engine; --shard I/N makes part I
  show DIR       counts, and a contact sheet of the first samples
"""


def add_dataset_parser(commands) -> None:
    """The `dataset` subcommand, added to the `paintstep` command's subparsers."""
    dataset = commands.add_parser(
        "dataset",
        help="make training data from painting processes (recordings, or the strokes engine)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dataset.add_subparsers(dest="action", metavar="ACTION")

    build = actions.add_parser("build", help="real processes from recordings or videos")
    build.add_argument("source", metavar="SOURCE", help="Recorder folder, frames folder or video")
    build.add_argument(
        "--caption",
        default="",
        metavar="TEXT",
        help="caption for the processes that have no caption file (none)",
    )
    build.add_argument(
        "--name",
        default="real",
        metavar="NAME",
        help="the shards' name, NAME-00000.tar, ...; a build with another name adds to --out "
        "(real)",
    )
    build.add_argument(
        "--video-fps",
        type=float,
        default=2.0,
        metavar="F",
        help="frames read per second of a video (2)",
    )
    shared_options(build)
    build.set_defaults(run=run_build)

    synth = actions.add_parser("synth", help="synthetic processes painted by the strokes engine")
    synth.add_argument("pictures", metavar="PICTURES_DIR", help="folder of pictures to paint")
    synth.add_argument(
        "--shard",
        default="0/1",
        metavar="I/N",
        help="make part I (0 to N-1) of N: every Nth picture from the Ith (0/1)",
    )
    synth.add_argument(
        "--per-picture",
        type=int,
        default=1,
        metavar="K",
        help="processes per picture, each with other steps, options, seed (1)",
    )
    synth.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (0)")
    shared_options(synth)
    synth.set_defaults(run=run_synth)

    show = actions.add_parser("show", help="counts and a contact sheet of a dataset folder")
    show.add_argument("folder", metavar="DIR", help="the dataset folder")
    show.add_argument(
        "--sheet", metavar="PNG", help="where the contact sheet goes (DIR/contact_sheet.png)"
    )
    show.add_argument("--rows", type=int, default=8, metavar="N", help="samples shown (8)")
    show.set_defaults(run=run_show)
    dataset.set_defaults(run=lambda args: no_action(dataset))


def shared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the dataset folder")
    parser.add_argument(
        "--frames", type=int, default=FRAMES, metavar="N", help=f"keyframes per process ({FRAMES})"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=SIDE,
        metavar="PX",
        help=f"the keyframes' longer side, px ({SIDE})",
    )
    parser.add_argument(
        "--image-format", choices=FORMATS, default="png", help="how keyframes are stored (png)"
    )
    parser.add_argument(
        "--per-shard",
        type=int,
        default=SHARD_SAMPLES,
        metavar="K",
        help=f"samples per shard ({SHARD_SAMPLES})",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")


def no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def check(args: argparse.Namespace) -> None:
    if not 2 <= args.frames <= 256:
        raise PaintError(f"--frames is between 2 and 256, not {args.frames}.")
    if not 64 <= args.size <= 4096:
        raise PaintError(f"--size is between 64 and 4096 px, not {args.size}.")
    if args.per_shard < 1:
        raise PaintError(f"--per-shard is 1 or more, not {args.per_shard}.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PaintError(f"--out {out} is a file; give a folder for the dataset.")


def warner(args: argparse.Namespace):
    """What is skipped, said on stderr; nothing with --quiet (errors still are)."""

    def warn(text: str) -> None:
        if not args.quiet:
            print(f"paintstep: {text}", file=sys.stderr)

    return warn


def run_build(args: argparse.Namespace) -> int:
    from .real import process_sample
    from .sources import find_recordings, safe_key

    check(args)
    if args.video_fps <= 0:
        raise PaintError(f"--video-fps is more than 0, not {args.video_fps}.")
    recordings = find_recordings(Path(args.source), args.caption, args.video_fps)
    warn = warner(args)
    if safe_key(args.name) != args.name:
        raise PaintError(f"--name takes letters, digits, - and _, not {args.name!r}.")
    with ShardWriter(Path(args.out), args.name, args.image_format, args.per_shard) as writer:
        for recording in recordings:
            sample = process_sample(recording, args.frames, args.size, warn)
            if sample is not None:
                writer.write(sample)
                if not args.quiet:
                    print(
                        f"{recording.id}: {len(sample.frames)} keyframes from "
                        f"{sample.meta['recorded_frames']} frames",
                        flush=True,
                    )
    if not writer.samples:
        raise PaintError(f"No process in {args.source} had frames to keep; nothing was written.")
    if not args.quiet:
        print(f"Wrote {writer.samples} processes into {len(writer.shards)} shards in {args.out}/")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from .synth import find_pictures, parse_shard, shard_of, synth_samples

    check(args)
    shard = parse_shard(args.shard)
    if args.per_picture < 1:
        raise PaintError(f"--per-picture is 1 or more, not {args.per_picture}.")
    root = Path(args.pictures)
    pictures = shard_of(find_pictures(root), shard)
    prefix = f"synth-{shard[0]:04d}of{shard[1]:04d}"
    samples = synth_samples(
        pictures, root, args.frames, args.size, args.per_picture, args.seed, warner(args)
    )
    with ShardWriter(Path(args.out), prefix, args.image_format, args.per_shard) as writer:
        for sample in samples:
            writer.write(sample)
            if not args.quiet:
                print(
                    f"{sample.meta['source']}: {sample.meta['steps']} steps, "
                    f"{len(sample.frames)} keyframes",
                    flush=True,
                )
    if not args.quiet:
        print(
            f"Wrote {writer.samples} processes of {len(pictures)} pictures (part "
            f"{shard[0]} of {shard[1]}) into {args.out}/{prefix}-*.tar"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from .show import contact_sheet, describe, summary

    folder = Path(args.folder)
    if args.rows < 1:
        raise PaintError(f"--rows is 1 or more, not {args.rows}.")
    for line in describe(summary(folder)):
        print(line)
    sheet = Path(args.sheet) if args.sheet else folder / "contact_sheet.png"
    Image.fromarray(contact_sheet(folder, args.rows)).save(sheet)
    print(f"contact sheet: {sheet}")
    return 0

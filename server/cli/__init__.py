"""The `paintstep` command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..dataset.command import add_dataset_parser
from ..engines import engine_names, get_engine
from ..process import PaintError
from ..training.command import add_train_parser
from .paint import add_paint_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paintstep",
        description="Paintstep: see how a picture gets finished, step by step, as layers.",
    )
    parser.add_argument("--version", action="version", version=f"paintstep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    add_paint_command(commands)

    serve = commands.add_parser(
        "serve",
        help="run the server the Krita docker talks to",
        description="Run the Paintstep server. It listens on 127.0.0.1 (this machine only) unless "
        "--host says otherwise, which needs keys (see `paintstep keys`).",
    )
    from ..serve.settings import add_options

    add_options(serve)  # the server's settings, with their defaults
    serve.add_argument(
        "--parent-pid",
        type=int,
        metavar="PID",
        help="stop when process PID ends (the Krita that started this server)",
    )
    serve.add_argument("--verbose", "-v", action="store_true", help="log every message")
    serve.set_defaults(run=run_serve)

    keys = commands.add_parser(
        "keys",
        help="make CURVE keys for a server that other machines reach",
        description="Make the server's key pair (once) and a key pair for a client.",
    )
    keys.add_argument("--dir", metavar="DIR", help="keys folder (in the user's config folder)")
    keys.add_argument("--client", default="client", help="name of the client pair (client)")
    keys.set_defaults(run=run_keys)

    view = commands.add_parser(
        "view",
        help="scrub through a result folder in a window (needs the viewer extra)",
        description="Open a result folder written by `paintstep paint`: scrub with the slider, "
        "the arrow keys or the mouse wheel (Ctrl+wheel zooms), play with space, and export.",
    )
    view.add_argument("folder", metavar="OUT_DIR", nargs="?", help="the result folder")
    view.add_argument(
        "--server", metavar="ADDRESS", help="follow a job on this server instead, live"
    )
    view.add_argument("--job", metavar="ID", help="with --server: which job (the newest)")
    view.add_argument(
        "--keys", metavar="DIR", help="with --server: keys from `paintstep keys` for it"
    )
    view.set_defaults(run=run_view)

    convert = commands.add_parser(
        "convert",
        help="turn a motion module or control net file into a diffusers folder (diffusion)",
        description="Convert an AnimateDiff / SparseCtrl / ProcessPainter checkpoint (.ckpt or "
        ".safetensors, original layout) into a diffusers folder that the diffusion engine "
        "loads faster. Every key is checked: a missing or unexpected one is named.",
    )
    convert.add_argument("kind", choices=("motion", "control"), help="what the file holds")
    convert.add_argument("source", metavar="FILE", help="the checkpoint file")
    convert.add_argument("out", metavar="DIR", help="the folder to write")
    convert.add_argument(
        "--processpainter",
        action="store_true",
        help="the file is ProcessPainter's (its motion modules are recognised without this)",
    )
    convert.set_defaults(run=run_convert)

    engines = commands.add_parser(
        "engines",
        help="list the engines and their options",
        description="List the engines that paint the steps, whether each is ready on this "
        "machine (and what it lacks if not), and their options, with defaults and bounds: "
        "give them to `paintstep paint` as -o NAME=VALUE.",
    )
    engines.set_defaults(run=run_engines)
    add_dataset_parser(commands)
    add_train_parser(commands)
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


def run_serve(args: argparse.Namespace) -> int:
    from ..serve import Server, setup_logging
    from ..serve.settings import from_options

    settings = from_options(args)
    logfile = setup_logging(args.verbose)
    server = Server(settings)
    print(f"Paintstep server on {settings.address} (log: {logfile}); Ctrl-C stops it.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    if args.parent_pid:
        from ..serve import watch_parent

        watch_parent(args.parent_pid, server.stop)
    try:
        server.run()
    except KeyboardInterrupt:
        server.stop()
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from ..wire.keys import default_folder, make_keys

    folder = Path(args.dir) if args.dir else default_folder()
    server_public, client_secret = make_keys(folder, args.client)
    print(f"Keys are in {folder}.")
    print(f"Start the server with:  paintstep serve --host 0.0.0.0 --keys {folder}")
    print("Give each client these two files (and keep the secret one private):")
    print(f"  {server_public}")
    print(f"  {client_secret}")
    print("A client then connects with:  paintstep paint --server tcp://HOST:PORT --keys DIR ...")
    return 0


def run_view(args: argparse.Namespace) -> int:
    try:
        from ..viewer import run
    except ImportError:
        raise PaintError(
            "The viewer needs PySide6: install it with `pip install 'paintstep[viewer]'` "
            "(or PySide6-Essentials) into Paintstep's environment."
        ) from None
    if not args.folder and not args.server:
        raise PaintError("Give a result folder to view, or --server ADDRESS to follow a job.")
    return run(args.folder, args.server, args.job, args.keys)


def run_convert(args: argparse.Namespace) -> int:
    why = get_engine("diffusion").unavailable()
    if why:
        raise PaintError(why)
    from ..model.convert import convert_file

    out = convert_file(Path(args.source), Path(args.out), args.kind, args.processpainter)
    print(f'Wrote {out}/; name it as "{args.kind}" in your diffusion.json.')
    return 0


def run_engines(args: argparse.Namespace) -> int:
    for name in engine_names():
        engine = get_engine(name)
        print(f"{name}: {engine.description}")
        why = engine.unavailable()
        if why:
            print(f"  (not ready here: {why})")
        for option in engine.options:
            bounds = f" ({option.minimum}-{option.maximum})" if option.minimum is not None else ""
            if option.choices:
                bounds = f" ({'/'.join(option.choices)})"
            print(f"  {option.name}={option.default}{bounds}  {option.help}")
    return 0

"""What `paintstep serve` can be told: the settings, their defaults, and the options that
set them (the command's help shows the defaults from here)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..images import DEFAULT_MAX_SIDE
from ..wire import paths
from ..wire.errors import PaintError
from ..wire.protocol import DEFAULT_PORT, MAX_HEADER_BYTES

DEFAULT_HOST = "127.0.0.1"  # this machine only: any other address needs keys


@dataclass
class ServerSettings:
    address: str  # tcp://HOST:PORT (`tcp_address`)
    cache: Path  # where the jobs are kept
    max_side: int = DEFAULT_MAX_SIDE  # px: the largest canvas side taken
    workers: int = 1  # jobs painted at once (small strokes jobs have a worker of their own)
    cache_days: float = 30.0  # ended jobs older than this are removed
    cache_bytes: int = 5 * 1024**3  # and the oldest ones while the cache is larger
    keys: Path | None = None  # the folder `paintstep keys` made
    diffusion_config: Path | None = None  # the diffusion and paints-undo engines' weights list

    def engine_settings(self) -> dict[str, dict[str, Any]]:
        """What each engine is made with on this server (engines.configure)."""
        weights = {"weights_config": self.diffusion_config}
        return {"diffusion": weights, "paints-undo": weights}

    @property
    def max_message_bytes(self) -> int:
        """The largest message taken: a header, a canvas and a target, and a mask."""
        side = self.max_side
        return MAX_HEADER_BYTES + 2 * side * side * 4 + side * side


def tcp_address(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"tcp://{host}:{port}"


def add_options(parser: argparse.ArgumentParser) -> None:
    """The settings as `paintstep serve`'s options."""
    defaults = ServerSettings  # the dataclass's attributes are its fields' defaults
    days, gb = defaults.cache_days, defaults.cache_bytes / 1024**3
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument("--keys", metavar="DIR", help="CURVE keys folder made by `paintstep keys`")
    parser.add_argument("--cache-dir", metavar="DIR", help="where jobs are kept (user cache)")
    parser.add_argument(
        "--cache-days",
        type=float,
        default=days,
        metavar="DAYS",
        help=f"remove jobs older than this ({days:g})",
    )
    parser.add_argument(
        "--cache-gb",
        type=float,
        default=gb,
        metavar="GB",
        help=f"keep the job cache under this size ({gb:g})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        metavar="N",
        help=f"jobs painted at once ({defaults.workers})",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=defaults.max_side,
        metavar="PX",
        help=f"largest canvas side accepted, px ({defaults.max_side})",
    )
    parser.add_argument(
        "--diffusion-config",
        metavar="FILE",
        help="the diffusion engine's weights list (diffusion.json in the config folder)",
    )


def from_options(args: argparse.Namespace) -> ServerSettings:
    """The settings that the options `add_options` made say."""
    return ServerSettings(
        address=tcp_address(args.host, args.port),
        cache=Path(args.cache_dir) if args.cache_dir else paths.cache_dir(),
        max_side=args.max_side,
        workers=max(1, args.workers),
        cache_days=args.cache_days,
        cache_bytes=int(args.cache_gb * 1024**3),
        keys=Path(args.keys) if args.keys else None,
        diffusion_config=weights_list(args.diffusion_config),
    )


def weights_list(option: str | None) -> Path | None:
    if not option:
        return None
    config = Path(option).resolve()
    if not config.is_file():
        raise PaintError(f"There is no weights list at {config}; see docs/diffusion.md.")
    return config

"""CURVE keys for a server that listens beyond this machine (`paintstep keys`).

A keys folder holds the server's pair (server.key, server.key_secret), the public keys of the
clients it serves (clients/*.key), and client pairs made here (NAME.key, NAME.key_secret) to
hand to those clients together with server.key.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from . import paths
from .errors import PaintError


def default_folder() -> Path:
    return paths.config_dir() / "keys"


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs: the server's public key and its own key pair (z85 bytes)."""

    server_public: bytes
    public: bytes
    secret: bytes


def make_keys(folder: Path, client: str = "client") -> tuple[Path, Path]:
    """Make the server's pair (once) and a client pair; returns (server.key, client secret)."""
    if not client.replace("-", "").replace("_", "").isalnum() or client == "server":
        raise PaintError(f"Name the client with letters, digits, - and _ only, not {client!r}.")
    # Private before any secret is written: nobody else can enter the folder to read one.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "clients").mkdir(mode=0o700, exist_ok=True)
    server_public = folder / "server.key"
    if not server_public.exists():
        zmq.auth.create_certificates(str(folder), "server")
    zmq.auth.create_certificates(str(folder), client)
    (folder / f"{client}.key").replace(folder / "clients" / f"{client}.key")
    for secret in folder.glob("*.key_secret"):
        secret.chmod(0o600)
    return server_public, folder / f"{client}.key_secret"


def check_private(secret: Path) -> None:
    """Refuse a secret key that another user can read (or that is not this user's)."""
    if sys.platform == "win32":
        return  # no such mode bits: the folder's ACL decides
    info = secret.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PaintError(
            f"{secret} can be read by other users, who could pose as its owner; run `chmod 600 "
            f"{secret}` and `chmod 700 {secret.parent}` (it must be yours), then try again."
        )


def load_server_keys(folder: Path) -> tuple[bytes, bytes, Path]:
    """(public, secret, folder of allowed client keys) of the server."""
    secret_file = folder / "server.key_secret"
    if not secret_file.exists():
        raise PaintError(
            f"There are no server keys in {folder}; run `paintstep keys --dir {folder}` first."
        )
    check_private(secret_file)
    public, secret = zmq.auth.load_certificate(str(secret_file))
    return public, secret, folder / "clients"


def load_client_keys(folder: Path, client: str = "client") -> ClientKeys:
    """A client's keys from a folder holding server.key and NAME.key_secret."""
    server_file, secret_file = folder / "server.key", folder / f"{client}.key_secret"
    for needed in (server_file, secret_file):
        if not needed.exists():
            raise PaintError(
                f"{needed} is missing: copy server.key and {client}.key_secret from the server's "
                "keys folder (made by `paintstep keys`) into one folder and give that."
            )
    check_private(secret_file)
    server_public, _ = zmq.auth.load_certificate(str(server_file))
    public, secret = zmq.auth.load_certificate(str(secret_file))
    return ClientKeys(server_public, public, secret)

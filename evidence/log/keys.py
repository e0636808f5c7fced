"""The log's signing key: made once, kept in a 0600 file, never logged.

The key file holds one line, the C2SP private-key form
``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || seed)``. The key's name is the
log's origin, so the origin is made once, with the key, and then kept.

Creating the file is safe against a concurrent start: the key is written and
fsync'd to a private temporary file which is then hard-linked into place, so
the key file appears complete or not at all; a process that loses the race
reads the winner's key.
"""

from __future__ import annotations

import os
import secrets
import socket
import stat
from pathlib import Path

from evidence.chain import note
from evidence.errors import ConfigError, EvidenceError
from evidence.fsutil import create_exclusive

# A key file is one line of about 100 characters; refuse to read anything much larger.
MAX_KEY_FILE_SIZE = 4096


def default_origin() -> str:
    """``<host name>/evidence-<8 random hex digits>``: unique, and readable by a person."""
    return f"{_sanitize_host(socket.gethostname())}/evidence-{secrets.token_hex(4)}"


def _sanitize_host(hostname: str) -> str:
    cleaned = "".join(
        "-" if ch.isspace() or ch == "+" or not ch.isprintable() else ch for ch in hostname
    ).strip("-")
    return cleaned or "localhost"


def load_log_signer(key_file: Path, origin: str | None = None) -> note.Signer:
    """Read the existing key; raise `ConfigError` if it is missing, unsafe or not for `origin`."""
    try:
        fd = os.open(key_file, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise ConfigError(f"no log key file at {key_file}") from exc
    except OSError as exc:
        raise ConfigError(f"log key file {key_file}: cannot be read ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"log key file {key_file} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"log key file {key_file} is accessible by group or others (mode {mode:04o});"
                f" it holds the log's private key: run `chmod 600 {key_file}`"
            )
        data = os.read(fd, MAX_KEY_FILE_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_SIZE:
        raise ConfigError(f"log key file {key_file} is too large to be a key")
    try:
        signer = note.parse_signer_key(data.decode("ascii"))
    except (UnicodeDecodeError, EvidenceError) as exc:
        detail = "not ASCII" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ConfigError(
            f"log key file {key_file} does not hold a C2SP private key ({detail})"
        ) from exc
    if origin is not None and origin != signer.name:
        raise ConfigError(
            f"EVIDENCE_LOG_ORIGIN is {origin!r} but the log key in {key_file} is for origin"
            f" {signer.name!r}; a log's origin is fixed when its key is made"
            " (unset EVIDENCE_LOG_ORIGIN or set it to the key's origin)"
        )
    return signer


def load_or_create_log_signer(key_file: Path, origin: str | None = None) -> note.Signer:
    """The log's signer from `key_file`, making a new key (and the file) if there is none.

    `origin` names a new key; for an existing key it must match the key's name
    (`ConfigError` otherwise). The default origin is `default_origin()`.
    """
    key_file = Path(key_file)
    if key_file.exists() or key_file.is_symlink():
        return load_log_signer(key_file, origin)
    signer = note.Signer(origin or default_origin(), os.urandom(32))
    if create_exclusive(key_file, (signer.skey + "\n").encode("ascii")):
        return signer
    # Another process made the key first: use theirs.
    return load_log_signer(key_file, origin)

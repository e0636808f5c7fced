"""`evidence log verify`: follow a log's checkpoints from outside and check they never fork.

Anyone can run it against a server: it needs no account and trusts nothing the
server says without checking it.

1. The log's verifier key is pinned: given with ``--vkey``, or fetched from
   ``/log/vkey`` on first use and kept in the state file (trust on first use).
   A server that later presents another key is refused.
2. The latest checkpoint (``/log/checkpoint``) must carry a valid signature by
   the pinned key, with the key's name as its origin.
3. If the state file holds a checkpoint seen before, the new one must extend it:
   the same root at the same size, or a consistency proof
   (``/log/proof/consistency``) that verifies with
   `evidence.chain.merkle.verify_consistency`. A smaller size is a rollback.
   A state file that names another origin, or holds a malformed hash, is
   refused as damaged (never replaced, never trusted on first use again).
4. Only then is the new checkpoint written to the state file, atomically. On
   any failure the state file is left as it was: it is the evidence.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evidence import __version__
from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.clock import utc_now
from evidence.errors import EvidenceError, InvalidInput, Unreachable, VerificationError
from evidence.fsutil import replace_atomically

STATE_VERSION = 1
# Responses of the log API are small: a checkpoint with many cosignatures is a
# few KiB and a proof at most 65 hashes. Anything larger is refused unread.
MAX_RESPONSE_SIZE = 1 << 20
HTTP_TIMEOUT_SECONDS = 30

Fetch = Callable[[str], bytes]
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class SeenCheckpoint:
    """A verified checkpoint and when this monitor first saw it."""

    size: int
    root_hash: bytes
    note: str
    seen_at: str


@dataclass(frozen=True)
class MonitorState:
    server: str
    origin: str
    vkey: str
    checkpoint: SeenCheckpoint | None


@dataclass(frozen=True)
class VerifyResult:
    origin: str
    vkey: str
    checkpoint: SeenCheckpoint
    previous: SeenCheckpoint | None
    pinned: str | None  # how the key was pinned this time ("first use", "--vkey"), else None

    def summary(self) -> str:
        head = f"checkpoint {self.checkpoint.size} verified (origin {self.origin})"
        if self.previous is None:
            how = f"key pinned from {self.pinned}" if self.pinned else "key already pinned"
            return f"{head}; first checkpoint seen of this log; {how}: {self.vkey}"
        if self.previous.size == self.checkpoint.size:
            return f"{head}, unchanged since seen at {self.previous.seen_at}"
        return f"{head}, consistent with {self.previous.size} seen at {self.previous.seen_at}"


def normalize_server(server: str) -> str:
    """The server's base URL without a trailing slash; `InvalidInput` unless plain http(s)."""
    try:
        parts = urlsplit(server.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"server URL {server!r} is not valid ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"server URL {server!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment:
        raise InvalidInput(f"server URL {server!r} must not have a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def default_state_path(server: str) -> Path:
    """``$XDG_CONFIG_HOME/evidence/monitor-<server>.json`` (``~/.config`` by default)."""
    parts = urlsplit(normalize_server(server))
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc + parts.path).strip("_")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evidence" / f"monitor-{name}.json"


def http_get(url: str) -> bytes:
    """GET `url`; the body, or an `EvidenceError` that says what went wrong."""
    request = urllib.request.Request(  # noqa: S310 - the URL was checked to be http(s)
        url, headers={"User-Agent": f"evidence-monitor/{__version__}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            body: bytes = response.read(MAX_RESPONSE_SIZE + 1)
    except urllib.error.HTTPError as exc:
        with exc:
            detail = _error_detail(exc.read(4096))
        error = Unreachable if exc.code >= 500 else EvidenceError
        raise error(f"{url}: the server answered HTTP {exc.code}{detail}") from exc
    except urllib.error.URLError as exc:
        raise Unreachable(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(f"cannot read {url}: {exc}") from exc
    if len(body) > MAX_RESPONSE_SIZE:
        raise VerificationError(f"{url}: response is larger than {MAX_RESPONSE_SIZE} bytes")
    return body


def _error_detail(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except ValueError:
        return ""
    if isinstance(obj, dict) and isinstance(obj.get("detail"), str):
        return f": {obj['detail'][:500]}"
    return ""


# -- state file ------------------------------------------------------------


def load_state(path: Path) -> MonitorState | None:
    """The state kept at `path`, None if there is none; `InvalidInput` if it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"state file {path} cannot be read: {exc}") from exc
    try:
        obj = json.loads(text)
        if obj.get("version") != STATE_VERSION:
            raise ValueError(f"unknown version {obj.get('version')!r}")
        seen = obj.get("checkpoint")
        checkpoint = None
        if seen is not None:
            checkpoint = SeenCheckpoint(
                size=_int(seen["size"]),
                root_hash=_hash(seen["root_hash"], "its checkpoint's root hash"),
                note=_str(seen["note"]),
                seen_at=_str(seen["seen_at"]),
            )
        return MonitorState(
            server=_str(obj["server"]),
            origin=_str(obj["origin"]),
            vkey=_str(obj["vkey"]),
            checkpoint=checkpoint,
        )
    except (ValueError, KeyError, TypeError, AttributeError, VerificationError) as exc:
        raise InvalidInput(f"state file {path} is damaged: {exc!r}") from exc


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _hash(value: Any, what: str) -> bytes:
    """A 32-byte hash in canonical base64; `VerificationError` otherwise."""
    raw = note.b64decode_strict(_str(value), what)
    if len(raw) != merkle.HASH_SIZE:
        raise VerificationError(f"{what} is not a {merkle.HASH_SIZE}-byte hash")
    return raw


def save_state(path: Path, state: MonitorState, checked_at: str) -> None:
    """Replace the state file atomically (write, fsync, rename, fsync the directory)."""
    seen = state.checkpoint
    obj = {
        "version": STATE_VERSION,
        "server": state.server,
        "origin": state.origin,
        "vkey": state.vkey,
        "checked_at": checked_at,
        "checkpoint": None
        if seen is None
        else {
            "size": seen.size,
            "root_hash": note.b64encode(seen.root_hash),
            "note": seen.note,
            "seen_at": seen.seen_at,
        },
    }
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")
    replace_atomically(path, data)


# -- checking --------------------------------------------------------------


def _fetch_vkey(base: str, fetch: Fetch) -> str:
    body = fetch(f"{base}/log/vkey")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise VerificationError("the server's /log/vkey is not ASCII") from exc
    if not text.endswith("\n") or "\n" in text[:-1]:
        raise VerificationError("the server's /log/vkey is not one line")
    vkey = text[:-1]
    note.parse_vkey(vkey)
    return vkey


def _fetch_consistency_proof(base: str, old: int, new: int, fetch: Fetch) -> list[bytes]:
    body = fetch(f"{base}/log/proof/consistency?old={old}&new={new}")
    try:
        obj = json.loads(body)
        if not isinstance(obj, dict) or obj.get("old") != old or obj.get("new") != new:
            raise ValueError(f"it is not for old={old}, new={new}")
        hashes = obj.get("proof")
        if not isinstance(hashes, list) or len(hashes) > merkle.MAX_PROOF_HASHES:
            raise ValueError(f"its proof is not a list of at most {merkle.MAX_PROOF_HASHES} hashes")
        proof = [_hash(h, f"proof hash {i}") for i, h in enumerate(hashes)]
    except (ValueError, VerificationError) as exc:
        raise VerificationError(f"the server's consistency proof is malformed: {exc}") from exc
    return proof


def _fork_message(kind: str, detail: str, prev: SeenCheckpoint, new_note: str, path: Path) -> str:
    return (
        f"LOG {kind} DETECTED: {detail}\n"
        f"The log's operator signed both checkpoints below; together they show the log was"
        f" altered or is showing different histories to different people.\n"
        f"Keep the state file {path} (it was not changed) and both notes as evidence.\n"
        f"--- checkpoint seen at {prev.seen_at} ---\n{prev.note}"
        f"--- checkpoint served now ---\n{new_note}"
    )


def verify_log(
    server: str,
    state_path: Path,
    *,
    vkey: str | None = None,
    fetch: Fetch = http_get,
    clock: Clock = utc_now,
) -> VerifyResult:
    """Check the server's latest checkpoint against the pinned key and the last one seen.

    Raises `VerificationError` (rollback, fork, bad signature, other key),
    `InvalidInput` (bad arguments or a damaged state file) or `EvidenceError`
    (server unreachable). Updates the state file only when everything verified.
    """
    base = normalize_server(server)
    state = load_state(state_path)
    now = clock().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    served_vkey = _fetch_vkey(base, fetch)
    pinned_how: str | None = None
    if vkey is not None:
        pinned = note.parse_vkey(vkey).vkey
        if state is not None and state.vkey != pinned:
            raise VerificationError(
                f"the key given with --vkey ({pinned}) is not the key pinned in {state_path}"
                f" ({state.vkey}); use another --state file for another log"
            )
        if state is None:
            pinned_how = "--vkey"
    elif state is not None:
        pinned = state.vkey
    else:
        pinned, pinned_how = served_vkey, "first use"
    if served_vkey != pinned:
        raise VerificationError(
            f"the server presents the key {served_vkey} but the pinned key is {pinned};"
            " if the log's key was rotated on purpose, check the key.rotated entry and pin"
            " the new key with --vkey and a new --state file"
        )

    body = fetch(f"{base}/log/checkpoint")
    try:
        signed = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError("the server's checkpoint is not UTF-8") from exc
    try:
        checkpoint = cp.verify_checkpoint(signed, pinned)
    except VerificationError as exc:
        raise VerificationError(
            f"the server's checkpoint does not verify with the pinned key {pinned}: {exc}"
        ) from exc

    if state is not None and state.origin != checkpoint.origin:
        # The pinned key's name is the origin, so this state file contradicts
        # itself. Starting afresh would silently drop the checkpoint it holds.
        raise InvalidInput(
            f"state file {state_path} is for the log {state.origin!r}, but the server's"
            f" checkpoint is of the log {checkpoint.origin!r} (the name of the pinned key);"
            " the state file is damaged or belongs to another log: keep it as it is and"
            " use another --state file"
        )
    prev = state.checkpoint if state is not None else None
    seen = SeenCheckpoint(checkpoint.size, checkpoint.root_hash, signed, now)
    if prev is not None:
        if checkpoint.size < prev.size:
            raise VerificationError(
                _fork_message(
                    "ROLLBACK",
                    f"the log's size is now {checkpoint.size}, smaller than the size"
                    f" {prev.size} seen at {prev.seen_at}; a log never shrinks",
                    prev,
                    signed,
                    state_path,
                )
            )
        if checkpoint.size == prev.size:
            if checkpoint.root_hash != prev.root_hash:
                raise VerificationError(
                    _fork_message(
                        "FORK",
                        f"two different signed checkpoints of the same size {prev.size}",
                        prev,
                        signed,
                        state_path,
                    )
                )
            seen = prev
        else:
            proof = _fetch_consistency_proof(base, prev.size, checkpoint.size, fetch)
            try:
                merkle.verify_consistency(
                    prev.size, checkpoint.size, proof, prev.root_hash, checkpoint.root_hash
                )
            except VerificationError as exc:
                raise VerificationError(
                    _fork_message(
                        "FORK",
                        f"checkpoint {checkpoint.size} is NOT consistent with checkpoint"
                        f" {prev.size} seen at {prev.seen_at} ({exc})",
                        prev,
                        signed,
                        state_path,
                    )
                ) from exc

    save_state(state_path, MonitorState(base, checkpoint.origin, pinned, seen), now)
    return VerifyResult(checkpoint.origin, pinned, seen, prev, pinned_how)

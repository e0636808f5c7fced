"""A device's directory: key, manifest chain, token and receipts, all written durably.

Layout of DIR::

    device.key      the device's Ed25519 key, C2SP private-key form (0600)
    device.json     {"device", "name", "vkey", "seq", "prev"}: the manifest chain so far
    token           the bearer token from enrolment (0600), if set
    log.vkey        the log's verifier key, pinned on first use
    pending/        manifests signed but not yet acknowledged by the service, each with
                    the file it describes and the upload's URL once there is one
    discarded/      pending manifests given up on (their seq stays a gap in the chain)
    receipts/       one receipt per item, as the service returned it
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.chain import manifest, note
from evidence.errors import ConfigError, InvalidInput, NotFound
from evidence.fsutil import create_exclusive, replace_atomically

KEY_FILE = "device.key"
STATE_FILE = "device.json"
LOG_VKEY_FILE = "log.vkey"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True)
class PendingItem:
    """A manifest signed and not yet acknowledged: what `evidence device pending` shows."""

    item: str
    manifest: bytes
    signature: bytes
    seq: int
    file: Path | None  # the file it describes (None for a manifest signed before it was kept)
    location: str | None  # the upload's path on the server, once created
    error: str | None  # why the last attempt failed, if one did


@dataclass
class DeviceState:
    device: str
    name: str
    vkey: str
    seq: int  # of the last manifest signed
    prev: str | None  # SHA-256 of the last manifest signed


class DeviceDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    # -- creation ------------------------------------------------------------

    @classmethod
    def init(cls, path: Path, name: str) -> DeviceDir:
        """Create a device directory with a new key named `name`; refuse to overwrite one."""
        if not note.is_valid_key_name(name):
            raise InvalidInput(f"device name {name!r} must have no spaces and no '+'")
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        signer = note.new_signer(name, os.urandom(32))
        if not create_exclusive(path / KEY_FILE, (signer.skey + "\n").encode("ascii")):
            raise ConfigError(f"{path / KEY_FILE} already exists: this directory has a device")
        vkey = signer.verifier.vkey
        device = cls(path)
        device.save(DeviceState(manifest.device_id(vkey), name, vkey, 0, None))
        return device

    # -- key and state ---------------------------------------------------------

    def signer(self) -> note.Signer:
        key_file = self.path / KEY_FILE
        if not key_file.exists():
            raise ConfigError(f"{self.path} is not a device directory (run `evidence device init`)")
        return note.parse_signer_key(key_file.read_text("ascii"))

    def load(self) -> DeviceState:
        try:
            obj = json.loads((self.path / STATE_FILE).read_text("utf-8"))
            return DeviceState(obj["device"], obj["name"], obj["vkey"], obj["seq"], obj["prev"])
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.path} is not a device directory") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path / STATE_FILE} is damaged: {exc}") from exc

    def save(self, state: DeviceState) -> None:
        data = json.dumps(state.__dict__, indent=2, sort_keys=True) + "\n"
        replace_atomically(self.path / STATE_FILE, data.encode("utf-8"), mode=0o600)

    def set_token(self, token: str) -> None:
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise InvalidInput("a token is one word")
        replace_atomically(self.path / TOKEN_FILE, (token + "\n").encode("utf-8"), mode=0o600)

    def token(self) -> str:
        try:
            return (self.path / TOKEN_FILE).read_text("utf-8").strip()
        except FileNotFoundError as exc:
            raise ConfigError(
                f"no token in {self.path}: enrol the device and run `evidence device token`"
            ) from exc

    # -- manifests ---------------------------------------------------------------

    def next_manifest(self, source: Path | None = None, **fields: Any) -> tuple[bytes, bytes]:
        """Sign the next manifest of the chain and record it before anything is sent.

        The chain state is saved first, so a crash can never make the device
        reuse a `seq`; the signed manifest waits in pending/ (with the path of
        `source`, the file it describes, for `evidence device pending retry`)
        until a receipt for it is stored.
        """
        state = self.load()
        data = manifest.manifest_bytes(
            manifest.CaptureManifest(
                device=state.device, seq=state.seq + 1, prev=state.prev, **fields
            )
        )
        signature = manifest.sign_manifest(data, self.signer())
        item = manifest.item_id(data)
        pending = {"manifest": data.decode("utf-8"), "signature": signature.hex()}
        if source is not None:
            pending["file"] = str(source.absolute())
        replace_atomically(
            self.path / "pending" / f"{item}.json", json.dumps(pending).encode("utf-8"), 0o600
        )
        state.seq, state.prev = state.seq + 1, item
        self.save(state)
        return data, signature

    def pending(self) -> list[PendingItem]:
        """Manifests signed and not yet acknowledged, oldest first."""
        found = []
        for path in (self.path / "pending").glob("*.json"):
            try:
                obj = json.loads(path.read_text("utf-8"))
                data = obj["manifest"].encode("utf-8")
                found.append(
                    PendingItem(
                        item=path.stem,
                        manifest=data,
                        signature=bytes.fromhex(obj["signature"]),
                        seq=manifest.parse_manifest(data).seq,
                        file=Path(obj["file"]) if obj.get("file") else None,
                        location=obj.get("location"),
                        error=obj.get("error"),
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError(f"{path} is damaged: {exc}") from exc
        return sorted(found, key=lambda p: p.seq)

    def pending_item(self, item: str) -> PendingItem:
        """The pending manifest of `item` (its id, or a unique prefix of it)."""
        matches = [p for p in self.pending() if p.item.startswith(item.lower())] if item else []
        if len(matches) != 1:
            how = "no" if not matches else "more than one"
            raise NotFound(f"{how} pending manifest in {self.path} matches {item!r}")
        return matches[0]

    def discard_pending(self, item: str) -> Path:
        """Give up on the pending manifest of `item`: it moves to discarded/, kept as a record.

        Its seq was signed and can never be signed again, so it stays a gap in
        the device's chain, which is what the service will show.
        """
        source = self.path / "pending" / f"{item}.json"
        target = self.path / "discarded" / f"{item}.json"
        replace_atomically(target, source.read_bytes(), 0o600)
        source.unlink()
        return target

    def remember_location(self, item: str, location: str) -> None:
        """Note the upload's URL beside its pending manifest, to resume after a restart."""
        self._note_pending(item, location=location)

    def remember_failure(self, item: str, error: str) -> None:
        """Note why the last attempt to upload `item` failed (`pending list` shows it)."""
        self._note_pending(item, error=error)

    def _note_pending(self, item: str, **values: str) -> None:
        path = self.path / "pending" / f"{item}.json"
        pending = json.loads(path.read_text("utf-8"))
        pending.update(values)
        replace_atomically(path, json.dumps(pending).encode("utf-8"), 0o600)

    def log_vkey(self, session: Any) -> str:
        """The log's verifier key: pinned in the directory on first use, then always that one."""
        path = self.path / LOG_VKEY_FILE
        if path.exists():
            return path.read_text("utf-8").strip()
        response = session.request("GET", "/log/vkey")
        if response.status != 200:
            raise ConfigError(f"cannot fetch the log's key: {response.error()}")
        vkey: str = response.body.decode("utf-8").strip()
        note.parse_vkey(vkey)
        replace_atomically(path, (vkey + "\n").encode("utf-8"), 0o600)
        return vkey

    def store_receipt(self, item: str, receipt: dict[str, Any]) -> Path:
        path = self.path / "receipts" / f"{item}.json"
        replace_atomically(path, json.dumps(receipt, indent=2).encode("utf-8"), mode=0o600)
        (self.path / "pending" / f"{item}.json").unlink(missing_ok=True)
        return path

    def receipts(self) -> dict[str, dict[str, Any]]:
        return {
            p.stem: json.loads(p.read_text("utf-8"))
            for p in sorted((self.path / "receipts").glob("*.json"))
        }

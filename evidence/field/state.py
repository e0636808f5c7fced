"""A device's directory: key, manifest chain, token and receipts, all written durably.

Layout of DIR::

    device.key      the device's Ed25519 key, C2SP private-key form (0600)
    device.json     {"device", "name", "vkey", "seq", "prev"}: the manifest chain so far
    token           the bearer token from enrolment (0600), if set
    log.vkey        the log's verifier key, pinned on first use
    pending/        manifests signed but not yet acknowledged by the service
    receipts/       one receipt per item, as the service returned it
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.chain import manifest, note
from evidence.errors import ConfigError, InvalidInput
from evidence.fsutil import create_exclusive, replace_atomically

KEY_FILE = "device.key"
STATE_FILE = "device.json"
LOG_VKEY_FILE = "log.vkey"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret


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

    def next_manifest(self, **fields: Any) -> tuple[bytes, bytes]:
        """Sign the next manifest of the chain and record it before anything is sent.

        The chain state is saved first, so a crash can never make the device
        reuse a `seq`; the signed manifest waits in pending/ until a receipt
        for it is stored.
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
        replace_atomically(
            self.path / "pending" / f"{item}.json", json.dumps(pending).encode("utf-8"), 0o600
        )
        state.seq, state.prev = state.seq + 1, item
        self.save(state)
        return data, signature

    def pending(self) -> list[tuple[bytes, bytes]]:
        """Manifests signed and not yet acknowledged, oldest first."""
        found = []
        for path in sorted((self.path / "pending").glob("*.json")):
            obj = json.loads(path.read_text("utf-8"))
            found.append((obj["manifest"].encode("utf-8"), bytes.fromhex(obj["signature"])))
        return sorted(found, key=lambda p: manifest.parse_manifest(p[0]).seq)

    def remember_location(self, item: str, location: str) -> None:
        """Note the upload's URL beside its pending manifest, to resume after a restart."""
        path = self.path / "pending" / f"{item}.json"
        pending = json.loads(path.read_text("utf-8"))
        pending["location"] = location
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

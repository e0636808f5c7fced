"""Helpers of the ingest tests: an enrolled device with its case, and manifests it signs."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from evidence.cases.registry import add_case
from evidence.cases.tables import items
from evidence.chain import manifest as mf
from evidence.chain import note
from evidence.db import Database
from evidence.devices.assignments import assign_device
from evidence.devices.registry import enroll_device
from evidence.log.custody import CustodyLog
from evidence.people.accounts import add_user, assign_case
from evidence.web.keys import DB, LOG

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"


@dataclass
class Kit:
    """An enrolled device, its token, a case, and its manifest chain."""

    signer: note.Signer
    device: str
    token: str
    case: str
    worker: str = ""
    seq: int = 0
    prev: str | None = None
    signed: list[bytes] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def manifest(
        self,
        content: bytes,
        *,
        kind: str = "footage",
        media_type: str = "video/mp4",
        seq: int | None = None,
        prev: str | None = None,
        size: int | None = None,
        sha256: str | None = None,
        case: str | None = None,
    ) -> tuple[bytes, bytes]:
        """The next manifest of this device for `content` (overrides for bad ones), signed."""
        if seq is None:
            self.seq += 1
            seq, prev = self.seq, self.prev
        data = mf.manifest_bytes(
            mf.CaptureManifest(
                device=self.device,
                seq=seq,
                prev=prev,
                case=case or self.case,
                kind=kind,
                sha256=sha256 or hashlib.sha256(content).hexdigest(),
                size=len(content) if size is None else size,
                media_type=media_type,
                captured_at="2026-11-24T09:30:00Z",
                ended_at=None,
                geo=None,
            )
        )
        if seq == self.seq:
            self.prev = mf.item_id(data)
        self.signed.append(data)
        return data, mf.sign_manifest(data, self.signer)


def enrolled(log: CustodyLog, db: Database, name: str = "camera-1") -> Kit:
    """An enrolled device, given to a worker who is assigned to a new case."""
    now = dt.datetime.now(dt.UTC)
    signer = note.new_signer(f"device.example/{name}", hashlib.sha256(name.encode()).digest())
    created = enroll_device(log, db, signer.verifier.vkey, name, now=log.clock())
    case = add_case(db, f"CASE/{name}", now=now)["case"]
    worker = add_user(db, f"worker of {name}", ["worker"], now=now)["user"]
    assign_case(db, case, worker)
    assign_device(db, created["device"], worker)
    return Kit(signer, created["device"], created["token"], case, worker)


def metadata(manifest: bytes, signature: bytes) -> str:
    """Upload-Metadata as DESIGN.md has it: the manifest text, the signature's base64 text."""
    values = (("manifest", manifest), ("signature", base64.b64encode(signature)))
    return ",".join(f"{key} {base64.b64encode(value).decode()}" for key, value in values)


async def create(
    client: Any, kit: Kit, manifest: bytes, signature: bytes, data: bytes = b"", **headers: str
) -> Any:
    """POST a new upload; Upload-Length is the manifest's size unless given.

    With `data`, its bytes go with it (creation-with-upload).
    """
    length = headers.get("Upload-Length") or str(mf.parse_manifest(manifest).size)
    if data:
        headers = {"Content-Type": OFFSET_STREAM, **headers}
    return await client.post(
        "/api/v1/uploads",
        data=data or None,
        headers={
            **TUS,
            **kit.auth,
            "Upload-Length": length,
            "Upload-Metadata": metadata(manifest, signature),
            **headers,
        },
    )


async def patch(
    client: Any, kit: Kit, location: str, offset: int, data: bytes, **headers: str
) -> Any:
    return await client.patch(
        location,
        data=io.BytesIO(data) if len(data) > 1 << 20 else data,  # aiohttp warns of big bytes
        headers={
            **TUS,
            **kit.auth,
            "Upload-Offset": str(offset),
            "Content-Type": OFFSET_STREAM,
            **headers,
        },
    )


@contextlib.contextmanager
def stores_nothing(client: Any, objects: Callable[[], list[str]]) -> Iterator[None]:
    """What runs inside (refused requests) stores nothing and logs nothing.

    Afterwards the store holds what it held before, objects and staging alike
    (conftest's `objects`: files under the local store's root; every S3 object
    version, delete marker and multipart upload), the log has the same size
    and there are as many items.
    """
    before = _footprint(client, objects)
    yield
    assert _footprint(client, objects) == before


def _footprint(client: Any, objects: Callable[[], list[str]]) -> tuple[list[str], int, int]:
    with client.app[DB].read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one()
    return objects(), int(client.app[LOG].size()), int(count)

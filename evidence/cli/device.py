"""`evidence device ...`: the reference device client's commands."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any

import click

from evidence.chain import checkpoint as cp
from evidence.chain import manifest as mf
from evidence.chain import merkle
from evidence.chain.receipt import verify_receipt
from evidence.cli.common import echo_json
from evidence.errors import EvidenceError, InvalidInput, NotFound, VerificationError
from evidence.field.client import Refused, Session, Uploader
from evidence.field.state import DeviceDir, PendingItem

HASH_CHUNK = 1 << 20

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("evidence-device"),
    show_default=True,
    help="The device's directory (key, manifest chain, token, receipts).",
)


@click.group("device")
def device_group() -> None:
    """The reference device client: keys, signed manifests, resumable uploads, receipts."""


@device_group.command("init")
@dir_option
@click.option("--name", required=True, help="The device's key name, e.g. camera-17.example.")
def device_init(directory: Path, name: str) -> None:
    """Create the device's Ed25519 key; print its verifier key for enrolment."""
    device = DeviceDir.init(directory, name)
    state = device.load()
    echo_json({"device": state.device, "device_vkey": state.vkey})


@device_group.command("show")
@dir_option
def device_show(directory: Path) -> None:
    """Print the device's id and verifier key (as `init` did), its last seq and pending count."""
    device = DeviceDir(directory)
    state = device.load()
    echo_json(
        {
            "device": state.device,
            "device_vkey": state.vkey,
            "name": state.name,
            "seq": state.seq,
            "pending": len(device.pending()),
        }
    )


@device_group.command("token")
@dir_option
def device_token(directory: Path) -> None:
    """Store the bearer token from enrolment, read from standard input (never an argument)."""
    DeviceDir(directory).set_token(sys.stdin.readline())
    click.echo("token stored")


def _sha256_of(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with (
        path.open("rb") as source,
        click.progressbar(length=size, label="hashing", file=sys.stderr) as bar,
    ):
        while chunk := source.read(HASH_CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


@device_group.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--server", required=True, help="Base URL of the evidence service.")
@click.option("--case", "case", required=True, help="The case's opaque id.")
@click.option("--kind", required=True, type=click.Choice(mf.KINDS))
@click.option("--media-type", default=None, help="MIME type (default: guessed from the name).")
@click.option("--captured-at", default=None, help="RFC 3339 time of capture (default: now).")
@click.option("--vkey", default=None, help="The log's verifier key (default: fetched once).")
@dir_option
def device_upload(
    file: Path,
    server: str,
    case: str,
    kind: str,
    media_type: str | None,
    captured_at: str | None,
    vkey: str | None,
    directory: Path,
) -> None:
    """Hash and sign FILE's manifest, upload it resumably, keep and check the receipt.

    A manifest the service refuses, or that cannot reach it, stays in the
    device's pending/ (see `evidence device pending`).
    """
    echo_json(
        upload_file(
            DeviceDir(directory),
            server,
            file,
            case=case,
            kind=kind,
            media_type=media_type,
            captured_at=captured_at,
            vkey=vkey,
        )
    )


def upload_file(
    device: DeviceDir,
    server: str,
    file: Path,
    *,
    case: str,
    kind: str,
    media_type: str | None = None,
    captured_at: str | None = None,
    vkey: str | None = None,
) -> dict[str, Any]:
    """`evidence device upload`: sign the next manifest for `file`, send it; what it prints."""
    media_type = media_type or mimetypes.guess_type(file.name)[0]
    if media_type is None:
        raise InvalidInput(f"cannot tell the media type of {file.name}: give --media-type")
    size = file.stat().st_size
    sha256 = _sha256_of(file, size)
    captured_at = captured_at or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest, _ = device.next_manifest(
        file,
        case=case,
        kind=kind,
        sha256=sha256,
        size=size,
        media_type=media_type,
        captured_at=captured_at,
        ended_at=None,
        geo=None,
    )
    session = Session(server, device.token())
    pending = device.pending_item(mf.item_id(manifest))
    return send_pending(device, session, pending, vkey, hashed=True)


def send_pending(
    device: DeviceDir,
    session: Session,
    pending: PendingItem,
    vkey: str | None = None,
    *,
    hashed: bool = False,
) -> dict[str, Any]:
    """Upload a pending manifest's file (resuming where the server is), check and keep the
    receipt; what `device upload` prints. The file is hashed again first unless it was just
    `hashed` for the manifest. A failure is noted beside the manifest, which stays pending."""
    item = pending.item
    try:
        return _send(device, session, pending, vkey, hashed)
    except EvidenceError as exc:
        device.remember_failure(item, str(exc))
        raise


def _send(
    device: DeviceDir, session: Session, pending: PendingItem, vkey: str | None, hashed: bool
) -> dict[str, Any]:
    manifest = mf.parse_manifest(pending.manifest)
    if pending.file is None:
        raise NotFound(f"pending manifest {pending.item} does not say which file it describes")
    try:
        size = pending.file.stat().st_size
    except OSError as exc:
        raise NotFound(
            f"{pending.file}, which manifest seq {pending.seq} describes: {exc}"
        ) from exc
    if size != manifest.size or (not hashed and _sha256_of(pending.file, size) != manifest.sha256):
        raise VerificationError(
            f"{pending.file} is no longer the file that manifest seq {pending.seq} was signed for"
        )
    uploader = Uploader(session)
    location = pending.location
    if location is not None:
        try:
            uploader.offset(location)
        except Refused:
            location = None  # expired or refused: a new upload of the same manifest
    if location is None:
        location = uploader.create(pending.manifest, pending.signature, size)
        device.remember_location(pending.item, location)
    with click.progressbar(length=size, label="uploading", file=sys.stderr) as bar:
        sent = [0]

        def progress(offset: int) -> None:
            bar.update(offset - sent[0])
            sent[0] = offset

        uploader.send(pending.file, location, size, progress)
    receipt = uploader.receipt(location)
    log_vkey = vkey or device.log_vkey(session)
    verified = verify_receipt(receipt, log_vkey)
    if verified.entry.sha256 != manifest.sha256 or verified.item != pending.item:
        raise VerificationError("the receipt is for other content than what was sent")
    path = device.store_receipt(pending.item, receipt)
    return {
        "item": pending.item,
        "index": verified.index,
        "checkpoint_size": verified.checkpoint.size,
        "receipt": str(path),
    }


@device_group.group("pending")
def pending_group() -> None:
    """Manifests signed but not acknowledged by the service: list, retry or discard them."""


@pending_group.command("list")
@dir_option
def pending_list(directory: Path) -> None:
    """One line of JSON for each pending manifest, oldest first, with why it is still pending."""
    for pending in DeviceDir(directory).pending():
        manifest = mf.parse_manifest(pending.manifest)
        echo_json(
            {
                "item": pending.item,
                "seq": pending.seq,
                "case": manifest.case,
                "kind": manifest.kind,
                "size": manifest.size,
                "file": str(pending.file) if pending.file else None,
                "error": pending.error,
            }
        )


def _chosen(device: DeviceDir, items: tuple[str, ...], every: bool) -> list[PendingItem]:
    if every == bool(items):
        raise InvalidInput("name the pending items (their ids, or the start of them) or --all")
    return device.pending() if every else [device.pending_item(item) for item in items]


@pending_group.command("retry")
@click.argument("items", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every pending manifest, oldest first.")
@click.option("--server", required=True, help="Base URL of the evidence service.")
@click.option("--vkey", default=None, help="The log's verifier key (default: pinned or fetched).")
@dir_option
def pending_retry(
    items: tuple[str, ...], every: bool, server: str, vkey: str | None, directory: Path
) -> None:
    """Upload ITEMS (or --all) again, with the manifest they were signed with.

    Prints what `device upload` prints for each one that the service accepts,
    and why for each that fails (it stays pending); exits 1 if any failed.
    """
    device = DeviceDir(directory)
    session = Session(server, device.token())
    failures = 0
    for pending in _chosen(device, items, every):
        try:
            echo_json(send_pending(device, session, pending, vkey))
        except EvidenceError as exc:
            failures += 1
            click.echo(f"FAILED {pending.item} (seq {pending.seq}): {exc}", err=True)
    if failures:
        sys.exit(1)


@pending_group.command("discard")
@click.argument("items", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Discard every pending manifest.")
@click.option("--yes", is_flag=True, help="Yes: discard them (this cannot be undone).")
@dir_option
def pending_discard(items: tuple[str, ...], every: bool, yes: bool, directory: Path) -> None:
    """Give up on ITEMS (or --all): their manifests move to the device's discarded/.

    A signed seq is never signed again, so each discarded one stays a gap in
    this device's chain, and the service says so on every later item.
    """
    device = DeviceDir(directory)
    chosen = _chosen(device, items, every)
    if not yes:
        seqs = ", ".join(str(p.seq) for p in chosen) or "none"
        raise InvalidInput(
            f"discarding cannot be undone: seq {seqs} would stay a gap in this device's chain;"
            " add --yes to discard"
        )
    for pending in chosen:
        kept = device.discard_pending(pending.item)
        echo_json({"item": pending.item, "seq": pending.seq, "discarded": str(kept)})


@device_group.group("receipts")
def receipts_group() -> None:
    """The receipts this device holds."""


@receipts_group.command("verify")
@click.option("--server", required=True, help="Base URL of the evidence service.")
@dir_option
def receipts_verify(server: str, directory: Path) -> None:
    """Check every stored receipt, and that the server's current checkpoint still contains it.

    Each receipt must verify offline with the log's key, and the server's
    current checkpoint must be consistent with the checkpoint in the receipt
    (the log has only grown since). Exits 1 if any does not hold.
    """
    device = DeviceDir(directory)
    session = Session(server, device.token())
    vkey = device.log_vkey(session)
    current_note = _get(session, "/log/checkpoint").decode("utf-8")
    current = cp.verify_checkpoint(current_note, vkey)
    failures = 0
    receipts = device.receipts()
    for item, receipt in receipts.items():
        try:
            verified = verify_receipt(receipt, vkey)
            old = verified.checkpoint
            proof = _consistency(session, old.size, current.size)
            merkle.verify_consistency(
                old.size, current.size, proof, old.root_hash, current.root_hash
            )
        except VerificationError as exc:
            failures += 1
            click.echo(f"FAILED {item}: {exc}")
        else:
            click.echo(f"ok {item}: entry {verified.index}, still in checkpoint {current.size}")
    click.echo(
        f"{len(receipts) - failures} of {len(receipts)} receipts verified against "
        f"checkpoint {current.size}"
    )
    if failures:
        sys.exit(1)


def _get(session: Session, path: str) -> bytes:
    response = session.request("GET", path)
    if response.status != 200:
        raise VerificationError(f"GET {path}: {response.error()}")
    return response.body


def _consistency(session: Session, old: int, new: int) -> list[bytes]:
    import base64

    obj: Any = json.loads(_get(session, f"/log/proof/consistency?old={old}&new={new}"))
    return [base64.b64decode(h) for h in obj["proof"]]

"""Receipt checks shared by the ingest tests."""

from __future__ import annotations

from typing import Any

from evidence.chain.manifest import item_id, parse_manifest
from evidence.chain.receipt import VerifiedReceipt, verify_receipt


def verify_receipt_for(receipt: Any, vkey: str, manifest: bytes) -> VerifiedReceipt:
    """The receipt verifies offline and is the ingestion of exactly this manifest's item."""
    verified = verify_receipt(receipt, vkey)
    assert verified.item == item_id(manifest)
    assert verified.entry.sha256 == parse_manifest(manifest).sha256
    return verified

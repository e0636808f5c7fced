"""Receipts: checkable offline with the log's key alone, and nothing else accepted."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from chain_helpers import RefTree

from evidence.chain import checkpoint as cp
from evidence.chain import note
from evidence.chain.entries import DeviceRevoked, ItemIngested
from evidence.chain.receipt import make_receipt, verify_receipt
from evidence.errors import VerificationError

LOG = note.new_signer("log.example/custody", b"\x07" * 32)
ITEM = "ef" * 32


def ingested(item: str = ITEM) -> bytes:
    return ItemIngested(
        time="2026-11-24T10:00:00Z",
        item=item,
        prev=None,
        case="c1",
        device="d1",
        seq=1,
        kind="photo",
        sha256="aa" * 32,
        size=10,
    ).to_bytes()


def receipt_for(entries: list[bytes], index: int, item: str = ITEM) -> dict[str, Any]:
    tree = RefTree(entries)
    root, proof = tree.root(), tree.path(index)
    signed = cp.sign_checkpoint(cp.Checkpoint(LOG.name, len(entries), root), LOG)
    return make_receipt(item, index, entries[index], signed, proof)


ENTRIES = [DeviceRevoked(time="2026-11-24T09:00:00Z", device=f"d{i}").to_bytes() for i in range(6)]


def test_a_receipt_verifies_offline() -> None:
    entries = [*ENTRIES[:3], ingested(), *ENTRIES[3:]]
    verified = verify_receipt(receipt_for(entries, 3), LOG.verifier.vkey)
    assert (verified.item, verified.index, verified.checkpoint.size) == (ITEM, 3, 7)
    assert verified.entry.sha256 == "aa" * 32


def test_every_change_is_refused() -> None:
    entries = [*ENTRIES[:3], ingested(), *ENTRIES[3:]]
    good = receipt_for(entries, 3)
    other_key = note.new_signer(LOG.name, b"\x08" * 32).verifier
    bad_proof = [base64.b64encode(b"\x00" * 32).decode(), *good["proof"][1:]]
    changed: list[dict[str, Any]] = [
        {**good, "index": 2},
        {**good, "item": "00" * 32},
        {**good, "proof": bad_proof},
        {**good, "proof": good["proof"][:-1]},
        {**good, "entry": base64.b64encode(entries[2]).decode()},
        {**good, "entry": good["entry"] + "="},
        {**good, "checkpoint": good["checkpoint"].replace("\n7\n", "\n8\n")},
        {k: v for k, v in good.items() if k != "proof"},
        {**good, "extra": 1},
        {**good, "index": "3"},
        {**good, "item": 5},
        {**good, "entry": b"x"},
        {**good, "checkpoint": None},
        {**good, "proof": "abc"},
        {**good, "proof": [1]},
    ]
    for receipt in changed:
        with pytest.raises(VerificationError):
            verify_receipt(receipt, LOG.verifier.vkey)
    with pytest.raises(VerificationError):
        verify_receipt(good, other_key)
    with pytest.raises(VerificationError):
        verify_receipt([good], LOG.verifier.vkey)  # type: ignore[arg-type]


def test_a_receipt_for_an_entry_that_is_not_the_items_ingestion_is_refused() -> None:
    entries = [*ENTRIES, ingested("01" * 32)]
    with pytest.raises(VerificationError, match=r"not the item\.ingested"):
        verify_receipt(receipt_for(entries, 2), LOG.verifier.vkey)
    with pytest.raises(VerificationError, match=r"not the item\.ingested"):
        verify_receipt(receipt_for(entries, 6), LOG.verifier.vkey)

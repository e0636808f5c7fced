"""Receipts: the service's signed word that an item is in the custody log.

A receipt is the JSON object::

    {"item": ITEM_ID, "index": N, "entry": base64(entry bytes),
     "checkpoint": signed checkpoint note, "proof": [base64 hash, ...]}

It is checkable offline with the log's verifier key alone: the checkpoint's
signature, the entry's inclusion at `index` in the checkpoint's tree, and that
the entry is the ``item.ingested`` of `item`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evidence.chain import checkpoint as cp
from evidence.chain import merkle, note
from evidence.chain.entries import ItemIngested, parse_entry
from evidence.errors import VerificationError

RECEIPT_FIELDS = frozenset({"item", "index", "entry", "checkpoint", "proof"})


@dataclass(frozen=True)
class VerifiedReceipt:
    item: str
    index: int
    entry: ItemIngested
    checkpoint: cp.Checkpoint


def make_receipt(
    item: str, index: int, entry: bytes, checkpoint_note: str, proof: list[bytes]
) -> dict[str, Any]:
    return {
        "item": item,
        "index": index,
        "entry": base64.b64encode(entry).decode("ascii"),
        "checkpoint": checkpoint_note,
        "proof": [base64.b64encode(h).decode("ascii") for h in proof],
    }


def verify_receipt(receipt: Mapping[str, Any], vkey: str | note.Verifier) -> VerifiedReceipt:
    """Check a receipt offline; raise `VerificationError` naming what does not hold."""
    if not isinstance(receipt, Mapping) or set(receipt) != RECEIPT_FIELDS:
        raise VerificationError(f"a receipt has exactly the fields {sorted(RECEIPT_FIELDS)}")
    item, index = receipt["item"], receipt["index"]
    if not isinstance(item, str) or type(index) is not int:
        raise VerificationError("receipt item must be a string and index an integer")
    if not isinstance(receipt["entry"], str) or not isinstance(receipt["checkpoint"], str):
        raise VerificationError("receipt entry and checkpoint must be strings")
    if not isinstance(receipt["proof"], list) or not all(
        isinstance(h, str) for h in receipt["proof"]
    ):
        raise VerificationError("receipt proof must be a list of base64 strings")
    entry_bytes = note.b64decode_strict(receipt["entry"], "receipt entry")
    proof = [note.b64decode_strict(h, "receipt proof hash") for h in receipt["proof"]]
    checkpoint = cp.verify_checkpoint(receipt["checkpoint"], vkey)
    merkle.verify_inclusion(
        merkle.leaf_hash(entry_bytes), index, checkpoint.size, proof, checkpoint.root_hash
    )
    entry = parse_entry(entry_bytes)
    if not isinstance(entry, ItemIngested) or entry.item != item:
        raise VerificationError(f"the receipt's entry is not the item.ingested of {item}")
    return VerifiedReceipt(item, index, entry, checkpoint)

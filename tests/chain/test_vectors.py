"""Published test vectors against `evidence.chain`.

* RFC 6962 inclusion and consistency vectors from transparency-dev/merkle
  (``testdata/rfc6962/{inclusion,consistency}/**.json``): ``wantErr`` false
  must verify (return None), ``wantErr`` true must raise `VerificationError`.
* The 15-entry tessera log (``testdata/tessera-log``): every checkpoint
  verifies with the log's key, every single-byte change to it is rejected, its
  entry bundles hash to its level-0 tiles (C2SP tlog-tiles), and the roots
  computed by `evidence.chain.merkle` equal the signed roots.

The test data ships in tests/testdata (its README.md names the upstream commits);
a missing directory is a failure, never a skip (see `chain_helpers.require_testdata`).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from chain_helpers import (
    TESSERA_ORIGIN,
    TESSERA_VKEY,
    RefTree,
    find_testdata_dir,
    require_testdata,
    rfc_mth,
    unb64,
)

from evidence.chain import checkpoint, merkle, note, tree
from evidence.errors import VerificationError

# ---------------------------------------------------------------------------
# RFC 6962 vectors


def _vector_params(kind: str) -> list[Any]:
    root = find_testdata_dir() / "rfc6962"
    files = sorted((root / kind).rglob("*.json")) if (root / kind).is_dir() else []
    if not files:
        # Collected as one failing test rather than silently collecting nothing.
        return [pytest.param(None, id=f"{kind}-testdata-missing")]
    return [pytest.param(f, id=f.relative_to(root).as_posix()) for f in files]


def _hashes(value: list[str] | None) -> list[bytes] | None:
    # Go's JSON encodes a nil slice as null: the empty proof, which the
    # verifiers accept as None.
    return None if value is None else [unb64(h) for h in value]


def _load(path: Path | None, kind: str) -> dict[str, Any]:
    if path is None:
        require_testdata("rfc6962", kind)
        pytest.fail(f"no JSON vectors under {find_testdata_dir() / 'rfc6962' / kind}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_rfc6962_inclusion_vector(path: Path | None) -> None:
    v = _load(path, "inclusion")
    args = (
        unb64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        _hashes(v["proof"]),
        unb64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        assert merkle.verify_inclusion(*args) is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_rfc6962_consistency_vector(path: Path | None) -> None:
    v = _load(path, "consistency")
    args = (
        v["size1"],
        v["size2"],
        _hashes(v["proof"]),
        unb64(v["root1"]),
        unb64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        assert merkle.verify_consistency(*args) is None  # type: ignore[func-returns-value]


def test_rfc6962_vectors_are_all_there() -> None:
    """Guard against a partial copy of the vectors silently shrinking the suite."""
    root = require_testdata("rfc6962")
    inclusion = list((root / "inclusion").rglob("*.json"))
    consistency = list((root / "consistency").rglob("*.json"))
    assert len(inclusion) >= 50, inclusion
    assert len(consistency) >= 40, consistency
    happy = [
        p
        for p in inclusion + consistency
        if not json.loads(p.read_text())["wantErr"]  # at least one positive per directory
    ]
    assert len(happy) >= 6


# ---------------------------------------------------------------------------
# The tessera log

TESSERA_SIZE = 15
CHECKPOINT_NAMES = ["checkpoint", *(f"checkpoint.{n}" for n in range(TESSERA_SIZE + 1))]


def _tessera(*parts: str) -> Path:
    return require_testdata("tessera-log", *parts)


def _expected_size(name: str) -> int:
    return TESSERA_SIZE if name == "checkpoint" else int(name.split(".")[1])


def _read_bundle(data: bytes) -> list[bytes]:
    """C2SP tlog-tiles entry bundle: big-endian uint16 length-prefixed entries."""
    entries, pos = [], 0
    while pos < len(data):
        assert pos + 2 <= len(data), "truncated length prefix"
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        pos += 2
        assert pos + length <= len(data), "truncated entry"
        entries.append(data[pos : pos + length])
        pos += length
    return entries


def _read_tile(data: bytes) -> list[bytes]:
    assert len(data) % merkle.HASH_SIZE == 0
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


def _tessera_entries() -> list[bytes]:
    # The widest partial bundle holds every entry of the log.
    return _read_bundle(_tessera("tile", "entries", "000.p", str(TESSERA_SIZE)).read_bytes())


@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_tessera_checkpoint_verifies(name: str) -> None:
    signed = _tessera(name).read_bytes()
    text = note.verify_note(signed, TESSERA_VKEY)
    assert text == signed.decode().rsplit("\n\n", 1)[0] + "\n"
    assert note.verify_note(signed.decode(), note.parse_vkey(TESSERA_VKEY)) == text

    cp = checkpoint.verify_checkpoint(signed, TESSERA_VKEY)
    assert cp.origin == TESSERA_ORIGIN
    assert cp.size == _expected_size(name)
    assert cp.extensions == ()
    assert cp.to_text() == text
    assert cp.root_hash == rfc_mth(_tessera_entries()[: cp.size])
    if cp.size == 0:
        assert cp.root_hash == merkle.EMPTY_ROOT


@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_tessera_checkpoint_every_byte_flip_is_rejected(name: str) -> None:
    signed = _tessera(name).read_bytes()
    verifier = note.parse_vkey(TESSERA_VKEY)
    accepted = []
    for pos in range(len(signed)):
        mutated = bytearray(signed)
        mutated[pos] ^= 0x01
        for verify in (note.verify_note, checkpoint.verify_checkpoint):
            try:
                verify(bytes(mutated), verifier)
            except VerificationError:
                continue
            was, now = signed[pos : pos + 1], bytes(mutated[pos : pos + 1])
            accepted.append(f"{verify.__name__}: byte {pos} {was!r}->{now!r}")
    # A flip inside the last base64 character of a signature that only touches
    # its unused low bits (RFC 4648 section 3.5) leaves the decoded signature
    # unchanged: a verifier that does not insist on canonical base64 accepts it.
    assert not accepted, "mutated checkpoint accepted:\n" + "\n".join(accepted)


def test_tessera_tiles_match_entry_bundles() -> None:
    everything = _tessera_entries()
    assert len(everything) == TESSERA_SIZE
    for width in range(1, TESSERA_SIZE + 1):
        bundle = _read_bundle(_tessera("tile", "entries", "000.p", str(width)).read_bytes())
        tile = _read_tile(_tessera("tile", "0", "000.p", str(width)).read_bytes())
        assert len(bundle) == len(tile) == width
        assert bundle == everything[:width]  # bundles only ever grow
        assert [merkle.leaf_hash(e) for e in bundle] == tile


@pytest.mark.parametrize("size", range(TESSERA_SIZE + 1))
def test_tessera_roots_computed_by_the_core(size: int) -> None:
    signed = _tessera(f"checkpoint.{size}").read_bytes()
    cp = checkpoint.verify_checkpoint(signed, TESSERA_VKEY)
    entries = _tessera_entries()[:size]
    leaves = [merkle.leaf_hash(e) for e in entries]

    # 1. The tile hashes folded over the perfect subtrees of [0, size).
    if size:
        tile = _read_tile(_tessera("tile", "0", "000.p", str(size)).read_bytes())
        assert tile == leaves
        ref = RefTree(entries)
        assert ref.fold(0, size) == cp.root_hash

    # 2. append_leaves from the empty tree in batches of every width.
    for batch in (1, 2, 3, 7, 16):
        frontier: list[bytes] = []
        done = 0
        while done < size:
            chunk = leaves[done : done + batch]
            _, frontier = tree.append_leaves(done, frontier, chunk)
            done += len(chunk)
        assert tree.fold_subtrees(frontier) == cp.root_hash


def test_tessera_proofs_between_all_checkpoints() -> None:
    entries = _tessera_entries()
    ref = RefTree(entries)
    cps = [
        checkpoint.verify_checkpoint(_tessera(f"checkpoint.{n}").read_bytes(), TESSERA_VKEY)
        for n in range(TESSERA_SIZE + 1)
    ]
    for new in cps:
        for index in range(new.size):
            proof = ref.core_inclusion(index, new.size)
            assert proof == ref.path(index, new.size)
            checkpoint.verify_inclusion_in_checkpoint(entries[index], index, proof, new)
        for old in cps[: new.size + 1]:
            proof = ref.core_consistency(old.size, new.size)
            assert proof == ref.proof(old.size, new.size)
            merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)

"""The custody log's checkpoints and proofs verify with an implementation that is not ours.

Logs are built with `evidence.chain` (entries, `append_leaves`, `sign_checkpoint`,
`inclusion_path` / `consistency_path` + `perfect_subtrees` + `fold_subtrees`)
and handed to verify.go, which checks them with Go's golang.org/x/mod/sumdb
(note.Open, tlog.RecordHash, tlog.CheckRecord, tlog.CheckTree). The Go
verifier must accept all of them, and must reject a tampered checkpoint,
entry or proof, so that these tests can fail. The tessera test log (built by
yet another implementation) is fed to it too, as a check of the harness.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import struct
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from gotools import GoVerifier, go_result, verifier_doc

from evidence.chain import checkpoint, entries, merkle, note, tree
from evidence.errors import VerificationError

pytestmark = pytest.mark.interop

ORIGIN = "example.com/evidence/interop"
SIGNER = note.Signer(ORIGIN, hashlib.sha256(b"evidence interop test log key").digest())
VKEY = SIGNER.verifier.vkey
SIZES = [1, 2, 7, 8, 100, 1000]

TESSERA_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"


# ---------------------------------------------------------------------------
# A log built by the core, with an RFC 6962 reference next to it


def _hex(rng: random.Random) -> str:
    return rng.randbytes(32).hex()


def _entries(size: int, rng: random.Random) -> list[bytes]:
    """Realistic custody entries: log.created, then ingests and accesses of items."""
    out: list[entries.CustodyEntry] = [
        entries.LogCreated(time="2026-11-24T09:00:00Z", origin=ORIGIN, key=VKEY)
    ]
    items: dict[str, int] = {}
    while len(out) < size:
        time = (
            f"2026-11-24T{9 + len(out) // 3600:02d}:{len(out) // 60 % 60:02d}:{len(out) % 60:02d}Z"
        )
        entry: entries.CustodyEntry
        if items and rng.random() < 0.4:
            item = rng.choice(sorted(items))
            entry = entries.ItemAccessed(
                time=time,
                item=item,
                prev=items[item],
                actor=f"user:{rng.randrange(50)}",
                action=rng.choice(["play", "download", "view"]),
            )
        else:
            item = _hex(rng)
            entry = entries.ItemIngested(
                time=time,
                item=item,
                prev=None,
                case=f"case-{rng.randrange(1000)}",
                device=f"device-{rng.randrange(20)}",
                seq=len(items) + 1,
                kind="footage",
                sha256=_hex(rng),
                size=rng.randrange(1, 2**40),
            )
        items[item] = len(out)
        out.append(entry)
    return [e.to_bytes() for e in out]


class Log:
    """Entries, the subtree hashes the core computes, and proofs made from them."""

    def __init__(self, data: list[bytes], rng: random.Random) -> None:
        self.entries = data
        self.leaves = [merkle.leaf_hash(e) for e in data]
        self.subtrees: dict[tree.Subtree, bytes] = {}
        self.roots = {0: merkle.EMPTY_ROOT}
        size, frontier = 0, list[bytes]()
        while size < len(data):  # appended in random batches, as the service does
            batch = self.leaves[size : size + rng.randrange(1, 40)]
            created, frontier = tree.append_leaves(size, frontier, batch)
            self.subtrees.update(created)
            size += len(batch)
            self.roots[size] = tree.fold_subtrees(frontier)
        ref = _reference(tuple(self.leaves))
        for n, root in self.roots.items():
            assert root == ref(0, n), n  # the core agrees with RFC 6962's MTH

    @property
    def size(self) -> int:
        return len(self.entries)

    def root(self, size: int) -> bytes:
        return tree.fold_subtrees(self._range(0, size)) if size else merkle.EMPTY_ROOT

    def _range(self, start: int, end: int) -> list[bytes]:
        return [self.subtrees[s] for s in tree.perfect_subtrees(start, end)]

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        return [tree.fold_subtrees(self._range(a, b)) for a, b in tree.inclusion_path(index, size)]

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.size if new is None else new
        return [tree.fold_subtrees(self._range(a, b)) for a, b in tree.consistency_path(old, new)]

    def checkpoint(self, size: int | None = None, signer: note.Signer = SIGNER) -> str:
        size = self.size if size is None else size
        return checkpoint.sign_checkpoint(
            checkpoint.Checkpoint(signer.name, size, self.root(size)), signer
        )


def _reference(leaves: tuple[bytes, ...]) -> Any:
    """MTH over leaf hashes, straight from RFC 6962 section 2.1 (memoised)."""

    @cache
    def mth(start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return leaves[start]
        k = 1
        while k * 2 < n:
            k *= 2
        return hashlib.sha256(b"\x01" + mth(start, start + k) + mth(start + k, end)).digest()

    return mth


@cache
def _log(size: int) -> Log:
    rng = random.Random(size)
    return Log(_entries(size, rng), rng)


def _sample(n: int, rng: random.Random, limit: int) -> list[int]:
    """All of range(n) if small, else its ends and a random sample."""
    if n <= limit:
        return list(range(n))
    picks = {0, 1, n - 2, n - 1, n // 2, (n - 1) & ~((1 << ((n - 1).bit_length() - 1)) - 1)}
    picks.update(rng.sample(range(n), limit - len(picks)))
    return sorted(picks)


def _full_doc(log: Log) -> dict[str, Any]:
    rng = random.Random(log.size * 7)
    inclusions = [(i, log.entries[i], log.inclusion(i)) for i in _sample(log.size, rng, limit=120)]
    olds = _sample(log.size + 1, rng, limit=120)
    consistencies = [(m, log.root(m), log.consistency(m)) for m in olds]
    return verifier_doc(VKEY, log.checkpoint(), inclusions, consistencies)


def _accepted(go_verifier: GoVerifier, doc: dict[str, Any]) -> dict[str, Any]:
    proc = go_verifier(doc)
    assert proc.returncode == 0, f"Go verifier rejected a valid log: {proc.stdout}{proc.stderr}"
    return go_result(proc)


def _rejected(go_verifier: GoVerifier, doc: dict[str, Any], reason: str) -> dict[str, Any]:
    proc = go_verifier(doc)
    assert proc.returncode == 1, f"Go verifier did not reject ({reason}): {proc.stdout}"
    result = go_result(proc)
    assert reason in result["error"], result
    return result


# ---------------------------------------------------------------------------
# Logs built by the core verify in Go


@pytest.mark.parametrize("size", SIZES)
def test_go_accepts_checkpoint_inclusions_and_consistencies(
    go_verifier: GoVerifier, size: int
) -> None:
    log = _log(size)
    doc = _full_doc(log)
    result = _accepted(go_verifier, doc)
    assert result["origin"] == ORIGIN
    assert result["size"] == size
    assert base64.b64decode(result["root"]) == log.root(size)
    assert result["inclusions"] == len(doc["inclusions"]) > 0
    assert result["consistencies"] == len(doc["consistencies"]) > 0
    if size <= 100:
        assert result["inclusions"] == size  # every entry
        assert result["consistencies"] == size + 1  # from every older size, 0 included

    # The same document verifies with the core (the two implementations agree).
    cp = checkpoint.verify_checkpoint(doc["checkpoint"], VKEY)
    for inc in doc["inclusions"]:
        proof = [base64.b64decode(h) for h in inc["proof"]]
        checkpoint.verify_inclusion_in_checkpoint(
            base64.b64decode(inc["entry"]), inc["index"], proof, cp
        )
    for con in doc["consistencies"]:
        proof = [base64.b64decode(h) for h in con["proof"]]
        merkle.verify_consistency(
            con["old_size"], cp.size, proof, base64.b64decode(con["old_root"]), cp.root_hash
        )


def test_go_accepts_every_older_checkpoint(go_verifier: GoVerifier) -> None:
    """Checkpoints of every size of a growing log, each with proofs towards it."""
    log = _log(100)
    for size in (1, 2, 3, 4, 5, 31, 32, 33, 64, 99):
        inclusions = [(i, log.entries[i], log.inclusion(i, size)) for i in range(0, size, 3)]
        consistencies = [(m, log.root(m), log.consistency(m, size)) for m in range(1, size + 1, 5)]
        doc = verifier_doc(VKEY, log.checkpoint(size), inclusions, consistencies)
        assert _accepted(go_verifier, doc)["size"] == size


def test_go_accepts_a_cosigned_checkpoint_with_extensions(go_verifier: GoVerifier) -> None:
    log = _log(7)
    witness = note.Signer("witness.example/w", bytes(range(32)))
    cp = checkpoint.Checkpoint(ORIGIN, 7, log.root(7), ("extension line",))
    signed = note.sign_note(cp.to_text(), [witness, SIGNER])
    doc = verifier_doc(VKEY, signed, [(3, log.entries[3], log.inclusion(3))])
    assert _accepted(go_verifier, doc)["inclusions"] == 1


# ---------------------------------------------------------------------------
# ...and tampering is caught in Go


@pytest.fixture(scope="module")
def base_doc() -> dict[str, Any]:
    log = _log(100)
    return verifier_doc(
        VKEY,
        log.checkpoint(),
        [(i, log.entries[i], log.inclusion(i)) for i in (0, 37, 99)],
        [(m, log.root(m), log.consistency(m)) for m in (1, 37, 64)],
    )


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(doc))
    return copied


def _flip_b64(text: str, byte: int = 0, mask: int = 1) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[byte] ^= mask
    return base64.b64encode(bytes(raw)).decode()


def test_the_untampered_base_document_verifies(
    go_verifier: GoVerifier, base_doc: dict[str, Any]
) -> None:
    _accepted(go_verifier, base_doc)


def test_go_rejects_a_tampered_checkpoint(
    go_verifier: GoVerifier, base_doc: dict[str, Any]
) -> None:
    log = _log(100)
    signed = base_doc["checkpoint"]
    root_line = signed.split("\n")[2]

    doc = _copy(base_doc)  # root changed under the signature
    doc["checkpoint"] = signed.replace(root_line, _flip_b64(root_line, 5))
    _rejected(go_verifier, doc, "checkpoint signature")

    doc = _copy(base_doc)  # size changed under the signature
    doc["checkpoint"] = signed.replace("\n100\n", "\n101\n", 1)
    _rejected(go_verifier, doc, "checkpoint signature")

    doc = _copy(base_doc)  # one bit of the signature
    sig = signed.rsplit(" ", 1)[1].strip()
    doc["checkpoint"] = signed.replace(sig, _flip_b64(sig, 40))
    _rejected(go_verifier, doc, "checkpoint signature")

    doc = _copy(base_doc)  # validly signed, but by another key of the same name
    other = note.Signer(ORIGIN, bytes(32))
    doc["checkpoint"] = log.checkpoint(signer=other)
    _rejected(go_verifier, doc, "checkpoint signature")

    doc = _copy(base_doc)  # validly signed by the log, but with a false root
    false = checkpoint.Checkpoint(ORIGIN, 100, log.root(99))
    doc["checkpoint"] = checkpoint.sign_checkpoint(false, SIGNER)
    _rejected(go_verifier, doc, "inclusions[0]")

    doc = _copy(base_doc)  # validly signed by the log's key, for another origin
    stranger = checkpoint.Checkpoint("example.com/elsewhere", 100, log.root(100))
    doc["checkpoint"] = note.sign_note(stranger.to_text(), [SIGNER])
    _rejected(go_verifier, doc, "origin")

    doc = _copy(base_doc)  # verified against another log's key
    doc["vkey"] = note.Signer("example.com/other-log", bytes(32)).verifier.vkey
    _rejected(go_verifier, doc, "checkpoint signature")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_go_rejects_a_tampered_entry(
    go_verifier: GoVerifier, base_doc: dict[str, Any], which: int
) -> None:
    doc = _copy(base_doc)
    entry = base64.b64decode(doc["inclusions"][which]["entry"])
    doc["inclusions"][which]["entry"] = base64.b64encode(entry.replace(b"2026", b"2025")).decode()
    _rejected(go_verifier, doc, f"inclusions[{which}]")

    doc = _copy(base_doc)
    doc["inclusions"][which]["entry"] = base64.b64encode(entry + b" ").decode()
    _rejected(go_verifier, doc, f"inclusions[{which}]")

    doc = _copy(base_doc)  # the leaf hash given as if it were the entry
    doc["inclusions"][which]["entry"] = base64.b64encode(merkle.leaf_hash(entry)).decode()
    _rejected(go_verifier, doc, f"inclusions[{which}]")


def test_go_rejects_a_tampered_inclusion_proof(
    go_verifier: GoVerifier, base_doc: dict[str, Any]
) -> None:
    for which in range(len(base_doc["inclusions"])):
        proof = base_doc["inclusions"][which]["proof"]
        for pos in range(len(proof)):
            doc = _copy(base_doc)
            doc["inclusions"][which]["proof"][pos] = _flip_b64(proof[pos], pos % 32)
            _rejected(go_verifier, doc, f"inclusions[{which}]")
        doc = _copy(base_doc)
        doc["inclusions"][which]["proof"] = proof[:-1]
        _rejected(go_verifier, doc, f"inclusions[{which}]")
        doc = _copy(base_doc)
        doc["inclusions"][which]["proof"] = [*proof, proof[0]]
        _rejected(go_verifier, doc, f"inclusions[{which}]")
        doc = _copy(base_doc)
        doc["inclusions"][which]["index"] += 1
        _rejected(go_verifier, doc, f"inclusions[{which}]")


def test_go_rejects_a_tampered_consistency_proof(
    go_verifier: GoVerifier, base_doc: dict[str, Any]
) -> None:
    for which in range(len(base_doc["consistencies"])):
        con = base_doc["consistencies"][which]
        for pos in range(len(con["proof"])):
            doc = _copy(base_doc)
            doc["consistencies"][which]["proof"][pos] = _flip_b64(con["proof"][pos], 31, 0x80)
            _rejected(go_verifier, doc, f"consistencies[{which}]")
        doc = _copy(base_doc)
        doc["consistencies"][which]["old_root"] = _flip_b64(con["old_root"], 0)
        _rejected(go_verifier, doc, f"consistencies[{which}]")
        doc = _copy(base_doc)
        doc["consistencies"][which]["old_size"] += 1
        _rejected(go_verifier, doc, f"consistencies[{which}]")
        doc = _copy(base_doc)
        doc["consistencies"][which]["proof"] = con["proof"][1:]
        _rejected(go_verifier, doc, f"consistencies[{which}]")


def test_go_and_python_agree_on_random_mutations(go_verifier: GoVerifier) -> None:
    """Mutations of a small log, judged by both implementations: same verdicts."""
    log = _log(100)
    rng = random.Random(2024)
    signed = log.checkpoint(13)
    verdicts = set()
    for _ in range(60):
        index = rng.randrange(13)
        entry, proof = log.entries[index], log.inclusion(index, 13)
        kind = rng.choice(["proof", "entry", "index", "none"])
        if kind == "proof" and proof:
            pos = rng.randrange(len(proof))
            proof[pos] = bytes(
                b ^ (rng.randrange(256) if i == 3 else 0) for i, b in enumerate(proof[pos])
            )
        elif kind == "entry":
            entry = entry[:-1]
        elif kind == "index":
            index = (index + rng.choice([-1, 1])) % 13
        doc = verifier_doc(VKEY, signed, [(index, entry, proof)])
        go_ok = go_verifier(doc).returncode == 0
        try:
            cp = checkpoint.verify_checkpoint(signed, VKEY)
            checkpoint.verify_inclusion_in_checkpoint(entry, index, proof, cp)
            py_ok = True
        except VerificationError:
            py_ok = False
        assert go_ok == py_ok, (kind, index)
        verdicts.add(go_ok)
    assert verdicts == {True, False}


def test_go_verifier_reports_unusable_input(go_verifier: GoVerifier) -> None:
    for doc in (
        {"vkey": VKEY, "checkpoint": "", "unexpected": 1},
        {"vkey": "not a key", "checkpoint": _log(1).checkpoint()},
        {"vkey": VKEY, "checkpoint": _log(1).checkpoint(), "inclusions": [{"proof": []}]},
    ):
        proc = go_verifier(doc)
        assert proc.returncode == 2, proc.stdout
        assert go_result(proc)["ok"] is False


# ---------------------------------------------------------------------------
# Harness check on a log written by another implementation (transparency-dev/tessera)


def _tessera_dir() -> Path:
    env = os.environ.get("EVIDENCE_TESTDATA_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[1] / "testdata"
    path = base / "tessera-log"
    if not path.is_dir():
        pytest.fail(f"test data {path} is missing (set EVIDENCE_TESTDATA_DIR)")
    return path


def _tessera_entries() -> list[bytes]:
    data = (_tessera_dir() / "tile" / "entries" / "000.p" / "15").read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        out.append(data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return out


def test_go_accepts_the_tessera_log(go_verifier: GoVerifier) -> None:
    data = _tessera_entries()
    assert len(data) == 15
    log = Log(data, random.Random(0))
    signed = {n: (_tessera_dir() / f"checkpoint.{n}").read_text() for n in range(16)}
    roots = {}
    for size in range(16):
        cp = checkpoint.verify_checkpoint(signed[size], TESSERA_VKEY)
        assert cp.root_hash == log.root(size)
        roots[size] = cp.root_hash
    for size in range(16):
        inclusions = [(i, data[i], log.inclusion(i, size)) for i in range(size)]
        consistencies = [(m, roots[m], log.consistency(m, size)) for m in range(size + 1)]
        doc = verifier_doc(TESSERA_VKEY, signed[size], inclusions, consistencies)
        result = _accepted(go_verifier, doc)
        assert (result["size"], result["inclusions"], result["consistencies"]) == (
            size,
            size,
            size + 1,
        )
        assert base64.b64decode(result["root"]) == roots[size]
    # The harness rejects too: the checkpoint of size 15 with the entries of size 14's proofs.
    bad = verifier_doc(TESSERA_VKEY, signed[15], [(3, data[3], log.inclusion(3, 14))])
    _rejected(go_verifier, bad, "inclusions[0]")

"""Helpers of the application tests (imported by name: tests/ is on sys.path)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from serverproc import free_port

from evidence.chain import merkle
from evidence.chain.entries import ItemAccessed
from evidence.settings import Settings

__all__ = ["access_entries", "free_port", "make_settings", "reference_root"]


def make_settings(data_dir: Path, **env: str) -> Settings:
    """Settings from an environment naming `data_dir` and the given ``EVIDENCE_*`` values."""
    environ = {"EVIDENCE_DATA_DIR": str(data_dir), "EVIDENCE_LOG_FORMAT": "json"}
    environ.update({f"EVIDENCE_{name.upper()}": value for name, value in env.items()})
    return Settings.load(environ, stderr_is_tty=False)


def access_entries(count: int, start: int = 0) -> list[ItemAccessed]:
    """`count` distinct, valid custody entries."""
    return [
        ItemAccessed(
            time=f"2026-11-24T09:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}Z",
            item=hashlib.sha256(f"item-{start + i}".encode()).hexdigest(),
            prev=None,
            actor="reviewer-1",
            action="view",
        )
        for i in range(count)
    ]


def reference_root(entries: Sequence[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, written straight from the definition."""
    if not entries:
        return merkle.EMPTY_ROOT
    if len(entries) == 1:
        return merkle.leaf_hash(entries[0])
    k = 1
    while k * 2 < len(entries):
        k *= 2
    return merkle.node_hash(reference_root(entries[:k]), reference_root(entries[k:]))

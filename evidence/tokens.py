"""Bearer secrets: device tokens, API tokens, session ids and form tokens.

Each is 256 random bits (`SECRET_BYTES`), URL-safe base64, with a prefix that
makes a leaked one recognisable to secret scanners where it is a credential
(`evd_` for devices, `evu_` for people). The database keeps only its SHA-256
(`digest`): 256 random bits need no slow hash, and a leaked database holds no
usable credential. Lookups compare digests in constant time (`same_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32  # 256 bits: beyond guessing, so a fast hash is enough to store them


def new_secret(prefix: str = "") -> str:
    """A fresh secret: `prefix` and 43 URL-safe characters."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> bytes:
    """What the database keeps of a secret: its SHA-256."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def same_digest(stored: bytes | memoryview, wanted: bytes) -> bool:
    """Whether a stored digest is `wanted`, compared in constant time."""
    return hmac.compare_digest(bytes(stored), wanted)

"""SHA-256 whose state can be saved with each staged part and resumed by any server process.

An upload's SHA-256 is computed as its parts are staged. Python's `hashlib`
cannot save or restore a hash's internal state, so without help a server that
resumes an upload begun elsewhere (or before a restart) would have to read
every byte staged so far back from the object store. Worse, an S3 upload
staged straight at its content address cannot be read at all before it is
completed, and it must not be completed before its hash is known to match.

`ResumableSha256` runs OpenSSL's SHA-256 (the same library `hashlib` uses, at
the same speed) through its ``SHA256_Init``/``SHA256_Update``/``SHA256_Final``
functions, whose context is a plain structure: eight 32-bit chaining words, a
bit count and up to 63 buffered bytes. `export` writes that state in a
portable text form (``<h0..h7 as 64 hex digits>:<bytes hashed>:<buffered
bytes in hex>``), `restore` reads it back into a fresh context; nothing in it
depends on the machine or the OpenSSL build.

OpenSSL 3 deprecates those functions but still exports them. The library is
loaded once and checked against `hashlib` (several inputs, each split and
carried over through `export`/`restore`) before it is used; where it cannot be
loaded or fails the check, `AVAILABLE` is False and callers use `hashlib`,
keeping the hash only in memory (`new_hasher` gives one or the other). See
docs/decisions/0009-ingest-straight-to-the-content-address.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import sys
from typing import Final, Protocol

DIGEST_SIZE: Final = 32
BLOCK_SIZE: Final = 64


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def copy(self) -> Hasher: ...

    def hexdigest(self) -> str: ...


class _Sha256Ctx(ctypes.Structure):
    # OpenSSL's SHA256_CTX (include/openssl/sha.h), unchanged since 0.9.8.
    _fields_ = (
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * BLOCK_SIZE),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    )


def _load_libcrypto() -> ctypes.CDLL | None:
    # Linux only: elsewhere the unversioned system libcrypto may abort the
    # process when loaded (macOS does), and hashlib serves.
    if not sys.platform.startswith("linux"):
        return None
    names = [ctypes.util.find_library("crypto"), "libcrypto.so.3", "libcrypto.so.1.1"]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if all(hasattr(lib, f) for f in ("SHA256_Init", "SHA256_Update", "SHA256_Final")):
            ctx = ctypes.POINTER(_Sha256Ctx)
            lib.SHA256_Init.argtypes = [ctx]
            lib.SHA256_Update.argtypes = [ctx, ctypes.c_void_p, ctypes.c_size_t]
            lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctx]
            for f in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                f.restype = ctypes.c_int
            return lib
    return None


_lib = _load_libcrypto()


class ResumableSha256:
    """SHA-256 with `export` and `restore` of its state (see the module docstring)."""

    def __init__(self) -> None:
        if _lib is None:
            raise RuntimeError("OpenSSL's SHA256 functions are not available here")
        self._ctx = _Sha256Ctx()
        _lib.SHA256_Init(ctypes.byref(self._ctx))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        assert _lib is not None
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if view.readonly:  # bytes: its buffer is passed as it is, not copied
            buffer = ctypes.c_char_p(view.tobytes() if not isinstance(data, bytes) else data)
            _lib.SHA256_Update(ctypes.byref(self._ctx), buffer, view.nbytes)
        else:
            array = (ctypes.c_char * view.nbytes).from_buffer(view)
            _lib.SHA256_Update(ctypes.byref(self._ctx), array, view.nbytes)

    def copy(self) -> ResumableSha256:
        twin = ResumableSha256.__new__(ResumableSha256)
        twin._ctx = _Sha256Ctx()
        ctypes.pointer(twin._ctx)[0] = self._ctx
        return twin

    def digest(self) -> bytes:
        assert _lib is not None
        out = ctypes.create_string_buffer(DIGEST_SIZE)
        ctx = self.copy()._ctx  # Final wipes the context it is given
        _lib.SHA256_Final(out, ctypes.byref(ctx))
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return int((self._ctx.Nh << 32) | self._ctx.Nl) >> 3

    def export(self) -> str:
        words = b"".join(int(w).to_bytes(4, "big") for w in self._ctx.h)
        pending = bytes(self._ctx.data)[: self._ctx.num]
        return f"{words.hex()}:{self.length}:{pending.hex()}"

    @classmethod
    def restore(cls, state: str) -> ResumableSha256:
        """The hasher `export` described. `ValueError` for anything malformed;
        `RuntimeError` where the library did not pass the check at import."""
        if not AVAILABLE:
            raise RuntimeError("OpenSSL's SHA256 functions did not pass the check here")
        return cls._restore(state)

    @classmethod
    def _restore(cls, state: str) -> ResumableSha256:
        words_hex, length_text, pending_hex = state.split(":")
        words = bytes.fromhex(words_hex)
        length = int(length_text)
        pending = bytes.fromhex(pending_hex)
        if (
            len(words) != DIGEST_SIZE
            or not length_text.isdigit()
            or length >= 1 << 61
            or len(pending) != length % BLOCK_SIZE
        ):
            raise ValueError("not a saved SHA-256 state")
        hasher = cls()
        ctx = hasher._ctx
        for i in range(8):
            ctx.h[i] = int.from_bytes(words[4 * i : 4 * i + 4], "big")
        bits = length << 3
        ctx.Nl, ctx.Nh = bits & 0xFFFFFFFF, bits >> 32
        ctypes.memmove(ctx.data, pending, len(pending))
        ctx.num = len(pending)
        return hasher


def _works() -> bool:
    """Does the loaded library agree with hashlib, carried over through export/restore?"""
    if _lib is None:
        return False
    data = bytes(range(256)) * 9 + b"evidence"
    try:
        for split in (0, 1, 63, 64, 65, 640, 1000, len(data)):
            first = ResumableSha256()
            first.update(data[:split])
            second = ResumableSha256._restore(first.export())
            second.update(bytearray(data[split:]))
            if second.hexdigest() != hashlib.sha256(data).hexdigest():
                return False
        return ResumableSha256().hexdigest() == hashlib.sha256(b"").hexdigest()
    except (ValueError, OSError):
        return False


AVAILABLE: Final = _works()


def new_hasher(*, resumable: bool = True) -> Hasher:
    """A `ResumableSha256` where `AVAILABLE` (and `resumable`), else `hashlib.sha256()`."""
    if resumable and AVAILABLE:
        return ResumableSha256()
    return hashlib.sha256()


def export_state(hasher: Hasher) -> str | None:
    """The saved state of `hasher`, or None for a hasher that cannot save it."""
    return hasher.export() if isinstance(hasher, ResumableSha256) else None

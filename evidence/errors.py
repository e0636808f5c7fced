"""The one error hierarchy of `evidence`.

Every error the service raises on purpose is an `EvidenceError`. Each subclass
carries a stable machine-readable `code` and the HTTP status the web layer maps
it to (in one middleware); the command line catches the root once and prints
the message with a non-zero exit code.
"""

from __future__ import annotations


class EvidenceError(Exception):
    """Root of every error raised on purpose by `evidence`."""

    code = "error"
    http_status = 500


class InvalidInput(EvidenceError):
    """A request, file or argument is malformed or out of range."""

    code = "invalid_input"
    http_status = 400


class VerificationError(EvidenceError):
    """A signature, proof, hash or encoding did not verify.

    Raised by every `verify_*` function of `evidence.chain` on any failure.
    """

    code = "verification_failed"
    http_status = 422


class Unauthorized(EvidenceError):
    """No credentials, or credentials that are not valid (a revoked device is Forbidden)."""

    code = "unauthorized"
    http_status = 401


class TooLarge(EvidenceError):
    code = "too_large"
    http_status = 413


class UnsupportedEncoding(EvidenceError):
    """A request body in a Content-Encoding the server does not decode."""

    code = "unsupported_encoding"
    http_status = 415


class ChecksumMismatch(EvidenceError):
    """tus checksum extension: the request body does not match its Upload-Checksum."""

    code = "checksum_mismatch"
    http_status = 460


class NotFound(EvidenceError):
    code = "not_found"
    http_status = 404


class Forbidden(EvidenceError):
    code = "forbidden"
    http_status = 403


class Conflict(EvidenceError):
    code = "conflict"
    http_status = 409


class IntegrityError(EvidenceError):
    """Stored data contradicts itself: a corrupted row, a forked log, a wrong key."""

    code = "integrity_error"
    http_status = 500


class StorageUnavailable(EvidenceError):
    """The database or object store cannot be reached right now; retry later."""

    code = "storage_unavailable"
    http_status = 503
    retry_after = 5  # seconds: sent as Retry-After


class Disconnected(EvidenceError):
    """The client went away before its request body ended (a device losing its signal).

    Never an answer (there is nobody left to answer): what arrived is kept, and
    the device resumes from the offset it then reads.
    """

    code = "disconnected"
    http_status = 400


class Unreachable(EvidenceError):
    """A remote service (a log being monitored) cannot be reached or failed; retry later.

    Kept apart from verification failures, so that a monitor can tell "the
    server is down" from "the log forked".
    """

    code = "unreachable"
    http_status = 502


class ConfigError(EvidenceError):
    """A setting is missing or has a bad value."""

    code = "config_error"

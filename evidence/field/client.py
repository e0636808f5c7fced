"""The device's side of tus 1.0.0: create, send in chunks, resume, retry, fetch the receipt.

Written for one bar of signal: every request may fail, so each chunk is sent
with its SHA-256 (tus checksum extension), a failure is followed by a HEAD to
learn what the server kept, and the upload carries on from there after a
growing pause. The upload's URL is saved as soon as it exists, so that even a
device that restarts resumes instead of starting over.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence import __version__
from evidence.errors import EvidenceError, InvalidInput, Unreachable

TUS_VERSION = "1.0.0"
DEFAULT_CHUNK_SIZE = 8 << 20
TIMEOUT_SECONDS = 60
READ_SIZE = 1 << 20


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> str:
        try:
            obj = self.json()
            return f"HTTP {self.status}: {obj.get('detail') or obj.get('error')}"
        except ValueError:
            return f"HTTP {self.status}: {self.body[:200].decode('utf-8', 'replace')}"


class Refused(EvidenceError):
    """The server refused the upload (4xx): retrying will not help."""


class Session:
    """HTTP requests to one server with one bearer token."""

    def __init__(self, server: str, token: str) -> None:
        parts = urllib.parse.urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"server must be an http(s) URL, not {server!r}")
        self.scheme, self.netloc = parts.scheme, parts.netloc
        self.base_path = parts.path.rstrip("/")
        self.token = token

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.netloc}{self.base_path}{path}"

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.netloc, timeout=TIMEOUT_SECONDS)
        try:
            conn.request(
                method,
                path if path.startswith(self.base_path) else self.base_path + path,
                body=body,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "User-Agent": f"evidence-device/{__version__}",
                    **(headers or {}),
                },
            )
            response = conn.getresponse()
            return Response(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{method} {self.url(path)}: {exc}") from exc
        finally:
            conn.close()


def _metadata(manifest: bytes, signature: bytes) -> str:
    """tus Upload-Metadata: the manifest's text and the signature's base64 text, each
    base64-encoded again as tus encodes every value."""
    values = (("manifest", manifest), ("signature", base64.b64encode(signature)))
    return ",".join(f"{key} {base64.b64encode(value).decode('ascii')}" for key, value in values)


class Uploader:
    def __init__(
        self,
        session: Session,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        attempts: int = 8,
        pause: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.chunk_size = chunk_size
        self.attempts = attempts  # consecutive failures tolerated before giving up
        self.pause = pause
        self.sleep = sleep

    def _retrying(self, what: str, call: Callable[[], Response]) -> Response:
        """`call` until it gets an answer that is not a failure of the network or server."""
        for attempt in range(self.attempts):
            try:
                response = call()
            except Unreachable:
                if attempt == self.attempts - 1:
                    raise
            else:
                if response.status < 500:
                    return response
                if attempt == self.attempts - 1:
                    raise Unreachable(f"{what}: {response.error()}")
            self.sleep(min(60.0, self.pause * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def create(self, manifest: bytes, signature: bytes, size: int) -> str:
        """POST the upload; its path on the server."""
        response = self._retrying(
            "create",
            lambda: self.session.request(
                "POST",
                "/api/v1/uploads",
                {
                    "Tus-Resumable": TUS_VERSION,
                    "Upload-Length": str(size),
                    "Upload-Metadata": _metadata(manifest, signature),
                },
            ),
        )
        if response.status != 201:
            raise Refused(f"the server refused the upload: {response.error()}")
        return urllib.parse.urlsplit(response.headers["location"]).path

    def offset(self, location: str) -> int:
        response = self._retrying(
            "HEAD", lambda: self.session.request("HEAD", location, {"Tus-Resumable": TUS_VERSION})
        )
        if response.status != 200:
            raise Refused(f"the upload is gone: HTTP {response.status}")
        return int(response.headers["upload-offset"])

    def send(
        self, path: Path, location: str, size: int, progress: Callable[[int], None] = lambda _: None
    ) -> None:
        """Send the file from wherever the server is, chunk by chunk, until it has it all."""
        offset = self.offset(location)
        progress(offset)
        failures = 0
        with path.open("rb") as source:
            while True:
                source.seek(offset)
                chunk = source.read(self.chunk_size) if offset < size else b""
                digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode("ascii")
                try:
                    response = self.session.request(
                        "PATCH",
                        location,
                        {
                            "Tus-Resumable": TUS_VERSION,
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                            "Upload-Checksum": f"sha256 {digest}",
                        },
                        chunk,
                    )
                except Unreachable:
                    response = None
                if response is not None and response.status == 204:
                    offset = int(response.headers["upload-offset"])
                    progress(offset)
                    failures = 0
                    if offset >= size:
                        return
                    continue
                if (
                    response is not None
                    and response.status < 500
                    and response.status
                    not in (
                        409,
                        460,
                    )
                ):
                    raise Refused(f"the server refused the upload: {response.error()}")
                failures += 1  # lost connection, 5xx, a stale offset or a damaged chunk
                if failures >= self.attempts:
                    detail = response.error() if response is not None else "no connection"
                    raise Unreachable(f"giving up after {failures} failed attempts: {detail}")
                self.sleep(min(60.0, self.pause * 2 ** (failures - 1)))
                offset = self.offset(location)
                progress(offset)

    def receipt(self, location: str) -> dict[str, Any]:
        response = self._retrying(
            "receipt", lambda: self.session.request("GET", location + "/receipt")
        )
        if response.status != 200:
            raise Refused(f"no receipt: {response.error()}")
        receipt: dict[str, Any] = response.json()
        return receipt

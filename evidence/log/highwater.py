"""The high-water mark: the largest checkpoint this machine's log processes have signed.

The database is the log's memory, and a database can go back in time: a
backup restored, a point-in-time recovery, someone with access. A log that
then signed on from the older state would sign a second, different tree of a
size it had already signed: a fork. So each machine keeps, beside the
database, the size and root of the largest checkpoint signed here, and the
log refuses to sign unless the database's tree still contains it.

One small JSON file, updated under an exclusive `flock` after every commit
(several processes on one machine share it). It is not fsync'd: it is a
check, not the record; what a crash loses of it is at most the last few
checkpoints. Monitors and witnesses (`evidence log verify`) catch the rest.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evidence.errors import IntegrityError


@dataclass(frozen=True)
class Mark:
    size: int
    root: bytes


class HighWater:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _read_fd(self, fd: int) -> Mark | None:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096)
        if not text.strip():
            return None
        try:
            obj = json.loads(text)
            return Mark(int(obj["size"]), base64.b64decode(obj["root"], validate=True))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"the high-water mark {self.path} is damaged: {exc}") from exc

    def read(self) -> Mark | None:
        if not self.path.exists():
            return None
        with self._locked() as fd:
            return self._read_fd(fd)

    def raise_to(self, size: int, root: bytes) -> None:
        """Record a newly signed checkpoint, if it is larger than the mark."""
        with self._locked() as fd:
            current = self._read_fd(fd)
            if current is not None and current.size >= size:
                return
            data = json.dumps({"size": size, "root": base64.b64encode(root).decode("ascii")})
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, data.encode("ascii"))

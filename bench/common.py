"""What the benchmarks share: ports, latency summaries, a real `evidence serve`, the table.

Imported by bench/run.py and bench/ingest.py, which are run as scripts
(``python bench/run.py``): this directory is then first on ``sys.path``.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": times[len(times) // 2] * 1000,
        "p99_ms": times[int(len(times) * 0.99)] * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
    }


def evidence_command(*args: str) -> list[str]:
    """The `evidence` command line of this environment with `args`."""
    evidence = shutil.which("evidence", path=str(Path(sys.executable).parent)) or "evidence"
    return [evidence, *args]


def wait_until_serving(
    base_url: str, server: subprocess.Popen[bytes], timeout: float = 60.0
) -> None:
    """Return once `server` answers ``GET /log/checkpoint``; RuntimeError if it never does."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/log/checkpoint", timeout=2).read()  # noqa: S310
            return
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("evidence serve did not start") from None
            time.sleep(0.2)


def print_table(rows: Sequence[tuple[str, str, str]], written_to: Path) -> None:
    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'measurement':<{width}} | result | against |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for label, value, against in rows:
        print(f"| {label:<{width}} | {value} | {against} |")
    print(f"\nwritten to {written_to}")

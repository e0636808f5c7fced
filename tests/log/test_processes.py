"""Several processes on one database make one log; a killed process loses nothing it confirmed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from evidence.chain.entries import DeviceRevoked, parse_entry
from evidence.db import Database
from evidence.log.custody import CustodyLog
from evidence.log.fsck import fsck

HERE = Path(__file__).parent


def appender_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` for an appender process: HERE (for loghelpers) put first on PYTHONPATH."""
    existing = environ.get("PYTHONPATH")
    path = f"{HERE}{os.pathsep}{existing}" if existing else str(HERE)
    return {**environ, "PYTHONPATH": path}


def test_the_appender_keeps_the_python_path_it_was_given() -> None:
    """Regression: PYTHONPATH was replaced by HERE, so an appender could import
    another `evidence` than the one under test; HERE is prepended instead."""
    given = os.pathsep.join(["/src/under/test", "/more"])
    assert appender_env({"PYTHONPATH": given, "X": "1"}) == {
        "PYTHONPATH": os.pathsep.join([str(HERE), "/src/under/test", "/more"]),
        "X": "1",
    }
    assert appender_env({})["PYTHONPATH"] == str(HERE)
    assert appender_env({"PYTHONPATH": ""})["PYTHONPATH"] == str(HERE)


def start_appender(url: str, name: str, count: int, concurrency: int) -> subprocess.Popen[str]:
    env = appender_env(os.environ)
    return subprocess.Popen(
        [sys.executable, str(HERE / "appender.py"), url, name, str(count), str(concurrency)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_four_processes_make_one_log_without_gaps_or_forks(
    db_url: str, db: Database, custody: CustodyLog
) -> None:
    procs = [start_appender(db_url, f"p{n}", 150, 8) for n in range(4)]
    confirmed: dict[int, str] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        for line in out.splitlines():
            index, device = line.split()
            assert int(index) not in confirmed, f"index {index} given twice"
            confirmed[int(index)] = device
    assert sorted(confirmed) == list(range(1, 601))
    for index, device in confirmed.items():
        entry = parse_entry(custody.entry(index))
        assert isinstance(entry, DeviceRevoked)
        assert entry.device == device
    assert custody.size() == 601
    report = fsck(db, custody.vkey)
    assert report.problems == []
    assert report.entries == 601


def test_an_append_confirmed_before_sigkill_survives(
    db_url: str, db: Database, custody: CustodyLog
) -> None:
    proc = start_appender(db_url, "victim", 100_000, 4)
    assert proc.stdout is not None
    confirmed = [proc.stdout.readline().split() for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    for index, device in confirmed:
        entry = parse_entry(custody.entry(int(index)))
        assert isinstance(entry, DeviceRevoked)
        assert entry.device == device
    second = Database.connect(db_url)
    reopened = CustodyLog.open(second, custody._signer)
    assert reopened.size() >= 51
    second.close()
    report = fsck(db, custody.vkey)
    assert report.problems == []

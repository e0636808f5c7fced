"""The real `evidence serve` in a subprocess, followed by `evidence log verify`, then SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from apphelpers import access_entries, make_settings
from serverproc import RunningServer, command, running, server_env

from evidence.db import Database
from evidence.log.custody import CustodyLog
from evidence.log.keys import load_log_signer


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running(tmp_path) as server:
        yield server


def _verify(server: RunningServer, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("log", "verify", "--server", server.url, "--state", str(state)),
        env=server_env(state.parent),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _append_from_an_admin_process(data_dir: Path, count: int) -> None:
    """Append as an admin command does: a second CustodyLog on the same database."""
    settings = make_settings(data_dir)
    db = Database.connect(settings.database_url)
    try:
        log = CustodyLog.open(db, load_log_signer(settings.log_key_file))
        log.append_sync(access_entries(count))
    finally:
        db.close()


def test_serve_verify_append_verify_forge_and_stop(
    running_server: RunningServer, tmp_path: Path
) -> None:
    state = tmp_path / "monitor" / "state.json"
    state.parent.mkdir()

    first = _verify(running_server, state)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("checkpoint 1 verified (origin ")
    assert "key pinned from first use" in first.stdout

    _append_from_an_admin_process(running_server.data_dir, 4)
    second = _verify(running_server, state)
    assert second.returncode == 0, second.stderr
    assert "checkpoint 5 verified" in second.stdout
    assert ", consistent with 1 seen at " in second.stdout

    saved = json.loads(state.read_text())
    saved["checkpoint"]["size"] = 3
    saved["checkpoint"]["root_hash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    state.write_text(json.dumps(saved))
    forged = _verify(running_server, state)
    assert forged.returncode == 1
    assert forged.stdout == ""
    assert forged.stderr.startswith(
        "error: LOG FORK DETECTED: checkpoint 5 is NOT consistent with checkpoint 3"
    )

    running_server.proc.send_signal(signal.SIGTERM)
    assert running_server.proc.wait(timeout=60) == 0
    events = running_server.events()
    names = [e["event"] for e in events]
    assert "server.started" in names
    assert names[-1] == "server.stopped"
    assert names.index("server.started") < names.index("server.stopping")
    started = next(e for e in events if e["event"] == "server.started")
    assert started["url"] == running_server.url
    assert str(started["vkey"]).startswith(str(started["origin"]) + "+")
    stopping = next(e for e in events if e["event"] == "server.stopping")
    assert stopping["signal"] == "SIGTERM"
    requests = [e for e in events if e["event"] == "http.request"]
    assert {e["path"] for e in requests} >= {"/log/vkey", "/log/checkpoint"}

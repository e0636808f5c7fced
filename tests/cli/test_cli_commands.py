"""The command line's exit codes and messages: settings errors, fsck, log verify."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from apphelpers import access_entries, free_port, make_settings

from evidence import __version__
from evidence.cli import main
from evidence.db import Database
from evidence.log.custody import CustodyLog
from evidence.log.keys import load_or_create_log_signer
from evidence.settings import Settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean EVIDENCE_* environment naming a data dir under tmp_path."""
    for name in list(os.environ):
        if name.startswith("EVIDENCE_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("EVIDENCE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("EVIDENCE_LOG_FORMAT", "json")
    return data_dir


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    code = info.value.code
    assert isinstance(code, int)
    return code


def _make_log(settings: Settings, entries: int) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.connect(settings.database_url)
    try:
        log = CustodyLog.open(db, load_or_create_log_signer(settings.log_key_file))
        if entries:
            log.append_sync(access_entries(entries))
    finally:
        db.close()


def test_bad_settings_exit_2_naming_each_bad_value(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVIDENCE_PORT", "abc")
    monkeypatch.setenv("EVIDENCE_STORE", "ftp")
    assert _run("serve") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings:\n")
    assert "EVIDENCE_PORT='abc'" in err
    assert "EVIDENCE_STORE='ftp'" in err
    assert "Traceback" not in err
    assert not env.exists()  # nothing was started or created


def test_bad_port_flag_exits_2(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("serve", "--port", "70000") == 2
    assert "--port='70000': must be a whole number from 1 to 65535" in capsys.readouterr().err


def test_missing_config_file_exits_2(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("fsck", "--config", str(tmp_path / "nope.toml")) == 2
    assert "nope.toml: cannot be read" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("frobnicate") == 2
    assert "No such command" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--version") == 0
    assert __version__ in capsys.readouterr().out


def test_fsck_of_a_whole_log_exits_0_with_counts(
    env: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    settings = make_settings(env)
    _make_log(settings, 5)
    capsys.readouterr()
    assert _run("fsck") == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 6 entries, 2 checkpoints, ")
    assert "verified (log " in out


def test_fsck_of_an_altered_entry_exits_1_naming_it(
    env: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    settings = make_settings(env)
    _make_log(settings, 3)
    assert settings.sqlite_path is not None
    with sqlite3.connect(settings.sqlite_path) as conn:
        altered = access_entries(1, start=99)[0].to_bytes()
        conn.execute("UPDATE log_entries SET data = ? WHERE idx = 2", (altered,))
    conn.close()
    capsys.readouterr()
    assert _run("fsck") == 1
    captured = capsys.readouterr()
    assert "problem: entry 2: stored leaf hash does not match the entry's bytes" in captured.out
    assert captured.err.startswith("FAILED: ")


def test_fsck_without_a_key_exits_2(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("fsck") == 2
    assert "error: no log key file at " in capsys.readouterr().err


def test_fsck_without_a_database_exits_1_and_creates_none(
    env: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    load_or_create_log_signer(env / "log.key")
    assert _run("fsck") == 1
    assert "error: no database at " in capsys.readouterr().err
    assert not (env / "evidence.db").exists()


def test_log_verify_of_an_unreachable_server_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 3, not 1: a monitor must tell "the server is down" from "the log is bad"."""
    state = tmp_path / "s.json"
    assert _run("log", "verify", "--server", "http://127.0.0.1:9", "--state", str(state)) == 3
    assert capsys.readouterr().err.startswith("error: cannot reach http://127.0.0.1:9/log/vkey")
    assert not state.exists()


def test_serve_refuses_to_start_with_an_origin_other_than_the_keys(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    load_or_create_log_signer(env / "log.key", "example.org/custody")
    monkeypatch.setenv("EVIDENCE_LOG_ORIGIN", "example.org/other")
    assert _run("serve", "--port", str(free_port())) == 2
    err = capsys.readouterr().err
    assert "error: EVIDENCE_LOG_ORIGIN is 'example.org/other' but the log key in" in err
    assert "Traceback" not in err

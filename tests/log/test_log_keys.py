"""The log's signing key file: made once 0600, reused, refused when unsafe or for another origin."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.chain import note
from evidence.errors import ConfigError
from evidence.log.keys import load_log_signer, load_or_create_log_signer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_file_is_0600_in_new_directories_and_holds_the_private_key(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "a" / "b" / "log.key"
    signer = load_or_create_log_signer(key_file, "example.org/custody")
    assert signer.name == "example.org/custody"
    assert _mode(key_file) == 0o600
    assert key_file.read_text() == signer.skey + "\n"
    assert note.parse_signer_key(key_file.read_text()).skey == signer.skey
    assert os.listdir(key_file.parent) == ["log.key"]  # no temporary file left behind


def test_existing_key_is_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "log.key"
    first = load_or_create_log_signer(key_file)
    again = load_or_create_log_signer(key_file)
    with_origin = load_or_create_log_signer(key_file, first.name)
    assert first.skey == again.skey == with_origin.skey


def test_default_origin_is_the_host_name_made_a_valid_key_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Jo's laptop+dock\tx")
    signer = load_or_create_log_signer(tmp_path / "log.key")
    host, _, rest = signer.name.partition("/")
    assert host == "Jo's-laptop-dock-x"
    assert rest.startswith("evidence-")
    assert len(rest) == len("evidence-") + 8
    assert note.is_valid_key_name(signer.name)


def test_two_default_origins_differ(tmp_path: Path) -> None:
    a = load_or_create_log_signer(tmp_path / "a.key")
    b = load_or_create_log_signer(tmp_path / "b.key")
    assert a.name != b.name
    assert a.skey != b.skey


def test_origin_other_than_the_keys_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "log.key"
    load_or_create_log_signer(key_file, "example.org/custody")
    with pytest.raises(ConfigError) as info:
        load_or_create_log_signer(key_file, "example.org/other")
    assert "'example.org/other'" in str(info.value)
    assert "'example.org/custody'" in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_key_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    key_file = tmp_path / "log.key"
    load_or_create_log_signer(key_file)
    key_file.chmod(mode)
    with pytest.raises(ConfigError) as info:
        load_or_create_log_signer(key_file)
    assert f"mode {mode:04o}" in str(info.value)
    assert f"chmod 600 {key_file}" in str(info.value)


def test_read_only_key_for_the_owner_is_accepted(tmp_path: Path) -> None:
    key_file = tmp_path / "log.key"
    signer = load_or_create_log_signer(key_file)
    key_file.chmod(0o400)
    assert load_or_create_log_signer(key_file).skey == signer.skey


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key\n", b"\xff\xfe", b"PRIVATE+KEY+name+00000000+AAAA\n", b"x" * 5000],
)
def test_garbage_key_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "log.key"
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_or_create_log_signer(key_file)
    assert str(key_file) in str(info.value)


def test_dangling_symlink_is_not_followed_to_create_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "log.key"
    key_file.symlink_to(tmp_path / "elsewhere" / "log.key")
    with pytest.raises(ConfigError, match="no log key file"):
        load_or_create_log_signer(key_file)
    assert not (tmp_path / "elsewhere").exists()


def test_load_without_create_refuses_a_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no log key file"):
        load_log_signer(tmp_path / "log.key")
    assert not (tmp_path / "log.key").exists()


def test_loser_of_a_creation_race_uses_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the key between our check and our link: we must use theirs."""
    key_file = tmp_path / "log.key"
    winner = note.Signer("example.org/custody", bytes(range(32)))
    real_link = os.link

    def link_after_the_winner(src: str | Path, dst: str | Path) -> None:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (winner.skey + "\n").encode())
        os.close(fd)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_the_winner)
    signer = load_or_create_log_signer(key_file)
    assert signer.skey == winner.skey
    assert key_file.read_text() == winner.skey + "\n"
    assert os.listdir(tmp_path) == ["log.key"]


def test_processes_starting_together_all_get_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / "log.key"
    script = (
        "import sys; from pathlib import Path;"
        " from evidence.log.keys import load_or_create_log_signer;"
        " print(load_or_create_log_signer(Path(sys.argv[1])).verifier.vkey)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(key_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert len(set(results)) == 1
    assert results[0] == load_log_signer(key_file).verifier.vkey
    assert sorted(os.listdir(key_file.parent)) == ["log.key"]

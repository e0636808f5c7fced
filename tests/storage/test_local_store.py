"""The local store beyond the contract: crashes, file modes, fsync, no copies."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from storehelpers import PART, blob, derived_key, original_key, read_all, sha, stage, upload_id

from evidence.errors import InvalidInput, StorageUnavailable
from evidence.storage.local import LocalStore

DATA = blob(2 * PART + 99, seed=10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> Iterator[LocalStore]:
    made = LocalStore(root, part_size=PART)
    yield made
    made.close()


def _crash_at(call: str, root: Path, script: str) -> None:
    """Run `script` in a child process whose `call` (os.link, os.unlink) kills it on the spot."""
    program = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from evidence.storage.local import LocalStore
        store = LocalStore(Path(sys.argv[1]), part_size={PART})
        def crash(*args, **kwargs):
            os._exit(9)
        {call} = crash
        """
    ) + textwrap.dedent(script)
    result = subprocess.run([sys.executable, "-c", program, str(root)], check=False)
    assert result.returncode == 9, "the child did not crash where it should"


def test_a_crash_between_writing_and_linking_leaves_no_partial_object(
    store: LocalStore, root: Path
) -> None:
    key = original_key(DATA)
    (root / "data").write_bytes(DATA)
    _crash_at(
        "os.link",
        root,
        f"""
        data = (Path(sys.argv[1]) / "data").read_bytes()
        store.put({key!r}, data, {sha(DATA)!r}, retain=True)
        """,
    )
    directory = (root / key).parent
    leftovers = [p.name for p in directory.iterdir()]
    assert len(leftovers) == 1
    assert leftovers[0].startswith(f".{sha(DATA)}.tmp-")  # the crash happened after the write
    assert store.stat(key) is None
    assert store.put(key, DATA, sha(DATA), retain=True) is True
    assert read_all(store.read(key)) == DATA


def test_a_crash_after_linking_a_commit_is_finished_by_the_retry(
    store: LocalStore, root: Path
) -> None:
    uid, key = upload_id(1), original_key(DATA)
    stage(store, uid, DATA)
    _crash_at(
        "os.unlink",
        root,
        f"store.stage_commit({uid!r}, {key!r}, {sha(DATA)!r}, {len(DATA)}, retain=True)\n",
    )
    assert read_all(store.read(key)) == DATA  # linked, whole, before the crash
    assert store.stage_commit(uid, key, sha(DATA), len(DATA), retain=True) is False
    assert store.stage_list() == []
    assert (root / key).stat().st_nlink == 1


def test_originals_are_read_only_and_derived_objects_are_not(store: LocalStore, root: Path) -> None:
    store.put(original_key(b"o"), b"o", sha(b"o"), retain=True)
    store.put(derived_key(b"d"), b"d", sha(b"d"), retain=False)
    stage(store, upload_id(2), DATA)
    store.stage_commit(upload_id(2), original_key(DATA), sha(DATA), len(DATA), retain=True)
    stage(store, upload_id(3), DATA)
    store.stage_commit(upload_id(3), derived_key(DATA), sha(DATA), len(DATA), retain=False)

    def mode(key: str) -> int:
        return stat.S_IMODE((root / key).stat().st_mode)

    assert mode(original_key(b"o")) == 0o444
    assert mode(original_key(DATA)) == 0o444
    assert mode(derived_key(b"d")) == 0o644
    assert mode(derived_key(DATA)) == 0o644


def test_staging_files_are_private(store: LocalStore, root: Path) -> None:
    uid = upload_id(4)
    handle = store.stage_begin(uid)
    store.stage_part(uid, handle, 0, b"x")
    for path in (root / "staging").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_a_commit_links_the_staged_file_without_copying_it(store: LocalStore, root: Path) -> None:
    uid, key = upload_id(5), original_key(DATA)
    stage(store, uid, DATA)
    staged_inode = (root / "staging" / uid).stat().st_ino
    assert store.stage_commit(uid, key, sha(DATA), len(DATA), retain=True)
    assert (root / key).stat().st_ino == staged_inode


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_every_new_name_and_its_directories_are_fsynced(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = original_key(b"durable")
    synced = _record_fsyncs(monkeypatch)
    store.put(key, b"durable", sha(b"durable"), retain=True)
    path = root / key
    for directory in (root / "originals", *list(path.parents)[:4]):
        assert str(directory) in synced, directory
    assert any(name.startswith(str(path.parent / f".{path.name}.tmp-")) for name in synced)

    uid, key = upload_id(6), original_key(DATA)
    synced.clear()
    handle = store.stage_begin(uid)
    receipt = store.stage_part(uid, handle, 0, DATA[:PART])
    assert str(root / "staging" / f"{uid}.part") in synced
    assert str(root / "staging" / f"{uid}.ledger") in synced
    store.stage_part(uid, handle, 1, DATA[PART : 2 * PART])
    store.stage_part(uid, handle, 2, DATA[2 * PART :])
    synced.clear()
    store.stage_complete(uid, handle, [receipt, f"1:{PART}", "2:99"], len(DATA))
    assert str(root / "staging") in synced
    synced.clear()
    store.stage_commit(uid, key, sha(DATA), len(DATA), retain=True)
    assert str((root / key).parent) in synced
    assert str(root / "staging") in synced


def test_a_torn_ledger_line_does_not_count_as_a_part(store: LocalStore, root: Path) -> None:
    uid = upload_id(7)
    handle = store.stage_begin(uid)
    receipts = [store.stage_part(uid, handle, 0, DATA[:PART])]
    receipts.append(store.stage_part(uid, handle, 1, DATA[PART : 2 * PART]))
    # Part 2's bytes written, then a crash while recording it in the ledger.
    with (root / "staging" / f"{uid}.part").open("r+b") as f:
        f.seek(2 * PART)
        f.write(DATA[2 * PART :])
    with (root / "staging" / f"{uid}.ledger").open("ab") as f:
        f.write(b"\n2 9")
    with pytest.raises(InvalidInput, match="2 parts are staged, not the 3"):
        store.stage_complete(uid, handle, [*receipts, "2:99"], len(DATA))
    receipts.append(store.stage_part(uid, handle, 2, DATA[2 * PART :]))  # the device resends
    store.stage_complete(uid, handle, receipts, len(DATA))
    assert read_all(store.stage_read(uid)) == DATA


def test_a_store_whose_directory_is_gone_is_unavailable(store: LocalStore, root: Path) -> None:
    store.check()
    (root / "staging").rmdir()
    with pytest.raises(StorageUnavailable, match="missing"):
        store.check()


def test_disk_errors_are_storage_unavailable(store: LocalStore, root: Path) -> None:
    (root / "derived").write_bytes(b"not a directory")
    with pytest.raises(StorageUnavailable):
        store.put(derived_key(b"x"), b"x", sha(b"x"), retain=False)


def test_the_store_refuses_parts_too_small_or_too_large() -> None:
    with pytest.raises(ValueError, match="part_size"):
        LocalStore(Path("/nonexistent"), part_size=0)


def test_a_commit_overtaken_by_another_commit_of_the_same_upload_reports_it_was_there(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests finishing one upload: the second finds the staged file there, and then
    gone (the first linked it into place and removed it). That is a commit done, not a
    broken disk: False, as a retry after the commit gets."""
    from evidence.storage import local

    uid, key = upload_id(7), original_key(DATA)
    stage(store, uid, DATA)
    real_size_of = local._size_of
    calls: list[Path] = []

    def size_of(path: Path) -> int | None:
        calls.append(path)
        size = real_size_of(path)
        if len(calls) == 2:  # the overtaken commit has looked at both: the other commits now
            monkeypatch.setattr(local, "_size_of", real_size_of)
            assert store.stage_commit(uid, key, sha(DATA), len(DATA), retain=True) is True
        return size

    monkeypatch.setattr(local, "_size_of", size_of)
    assert store.stage_commit(uid, key, sha(DATA), len(DATA), retain=True) is False
    assert read_all(store.read(key)) == DATA

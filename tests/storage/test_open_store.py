"""`open_store` builds the store the settings name."""

from __future__ import annotations

from pathlib import Path

from evidence.settings import Settings
from evidence.storage import DEFAULT_PART_SIZE, open_store
from evidence.storage.local import LocalStore
from evidence.storage.s3 import S3Store


def test_the_default_is_a_local_store_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load({"EVIDENCE_DATA_DIR": str(tmp_path / "d")}, stderr_is_tty=False)
    store = open_store(settings)
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "d" / "objects"
    assert store.part_size == DEFAULT_PART_SIZE
    assert (tmp_path / "d" / "objects" / "staging").is_dir()
    store.check()


def test_s3_settings_make_an_s3_store_without_touching_the_network() -> None:
    settings = Settings.load(
        {
            "EVIDENCE_STORE": "s3",
            "EVIDENCE_S3_BUCKET": "council-evidence",
            "EVIDENCE_S3_ENDPOINT_URL": "http://127.0.0.1:1",
            "EVIDENCE_S3_REGION": "eu-west-2",
            "EVIDENCE_S3_RETENTION_DAYS": "3650",
        },
        stderr_is_tty=False,
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.retention_days, store.part_size) == (
        "council-evidence",
        3650,
        DEFAULT_PART_SIZE,
    )
    store.close()

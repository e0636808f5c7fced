"""Devices and cases: enrolment and revocation are in the log; references and tokens are not."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence.cases.registry import add_case
from evidence.cases.tables import cases
from evidence.chain import manifest as mf
from evidence.chain import note
from evidence.chain.entries import DeviceEnrolled, DeviceRevoked, parse_entry
from evidence.db import Database
from evidence.devices.registry import (
    Device,
    authenticate_device,
    authenticate_devices,
    device_for_token,
    enroll_device,
    revoke_device,
)
from evidence.devices.tables import devices
from evidence.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from evidence.log.custody import CustodyLog
from evidence.log.fsck import fsck

NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def opened(tmp_path: Path) -> tuple[Database, CustodyLog]:
    db = Database.connect(f"sqlite:///{tmp_path / 'e.db'}")
    return db, CustodyLog.open(db, note.new_signer("test.example/log", b"\x01" * 32))


def device_key(name: str = "camera-1.example") -> str:
    return note.new_signer(name, hashlib.sha256(name.encode()).digest()).verifier.vkey


def all_entries(log: CustodyLog) -> bytes:
    return b"\n".join(log.entry(i) for i in range(log.size()))


def test_a_case_gets_an_opaque_id_and_its_reference_stays_out_of_the_log(
    opened: tuple[Database, CustodyLog],
) -> None:
    db, log = opened
    created = add_case(db, "LA/2026/00017 Smith", now=NOW)
    assert created["reference"] == "LA/2026/00017 Smith"
    assert len(created["case"]) == 32
    assert "Smith" not in created["case"]
    with db.read() as conn:
        assert conn.execute(sa.select(cases.c.reference)).scalar_one() == "LA/2026/00017 Smith"
    assert b"Smith" not in all_entries(log)
    with pytest.raises(Conflict, match="already exists"):
        add_case(db, "LA/2026/00017 Smith", now=NOW)
    for bad in ("", "   ", "x" * 201, "line\nbreak"):
        with pytest.raises(InvalidInput):
            add_case(db, bad, now=NOW)


def test_enrolment_is_a_log_entry_and_the_token_is_stored_only_hashed(
    opened: tuple[Database, CustodyLog],
) -> None:
    db, log = opened
    vkey = device_key()
    created = enroll_device(log, db, vkey, "Bodycam 17 (Team B)", now=log.clock())
    assert created["device"] == mf.device_id(vkey)
    token = created["token"]
    assert token.startswith("evd_")
    assert len(token) > 40
    entry = parse_entry(log.entry(log.size() - 1))
    assert isinstance(entry, DeviceEnrolled)
    assert (entry.device, entry.key) == (created["device"], vkey)
    with db.read() as conn:
        row = conn.execute(sa.select(devices)).one()
        assert row.enrolled_entry == log.size() - 1
        assert token.encode() not in bytes(row.token_hash)
        assert bytes(row.token_hash) == hashlib.sha256(token.encode()).digest()
        found = device_for_token(conn, token)
        assert found is not None
        assert (found.id, found.revoked) == (created["device"], False)
        assert device_for_token(conn, token + "x") is None
    assert b"Bodycam" not in all_entries(log)
    assert token.encode() not in all_entries(log)
    with pytest.raises(Conflict, match="already enrolled"):
        enroll_device(log, db, vkey, "again", now=log.clock())
    with pytest.raises(InvalidInput, match="not a device verifier key"):
        enroll_device(log, db, "not a key", "x", now=log.clock())
    assert fsck(db, log.vkey).problems == []


def test_revocation_is_a_log_entry_and_disables_the_token(
    opened: tuple[Database, CustodyLog],
) -> None:
    db, log = opened
    created = enroll_device(log, db, device_key(), "cam", now=log.clock())
    revoked = revoke_device(log, db, created["device"], now=log.clock())
    entry = parse_entry(log.entry(int(revoked["revoked_entry"])))
    assert isinstance(entry, DeviceRevoked)
    assert entry.device == created["device"]
    with db.read() as conn:
        found = device_for_token(conn, created["token"])
    assert found is not None
    assert found.revoked
    size = log.size()
    with pytest.raises(Conflict, match="already revoked"):
        revoke_device(log, db, created["device"], now=log.clock())
    with pytest.raises(NotFound):
        revoke_device(log, db, "0" * 32, now=log.clock())
    assert log.size() == size  # refused revocations append nothing


def test_many_headers_are_authenticated_in_one_read_each_with_its_own_answer(
    opened: tuple[Database, CustodyLog],
) -> None:
    db, log = opened
    good = enroll_device(log, db, device_key("a.example"), "a", now=log.clock())
    gone = enroll_device(log, db, device_key("b.example"), "b", now=log.clock())
    revoke_device(log, db, gone["device"], now=log.clock())
    headers = [
        f"Bearer {good['token']}",
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer evd_not-a-token",
        f"Bearer {gone['token']}",
        "Bearer caf\u00e9",
        f"Bearer {good['token']}",
    ]
    outcomes = authenticate_devices(db, headers)
    assert [type(o).__name__ for o in outcomes] == [
        "Device",
        "Unauthorized",
        "Unauthorized",
        "Unauthorized",
        "Forbidden",
        "Unauthorized",
        "Device",
    ]
    assert outcomes[0] == outcomes[6]
    assert isinstance(outcomes[0], Device)
    assert outcomes[0].id == good["device"]
    # the one-header form answers the same, raising the errors
    assert authenticate_device(db, headers[0]) == outcomes[0]
    with pytest.raises(Forbidden, match="revoked"):
        authenticate_device(db, headers[4])
    with pytest.raises(Unauthorized, match="required"):
        authenticate_device(db, headers[1])

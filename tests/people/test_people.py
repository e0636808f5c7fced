"""People: users, roles, passwords, API tokens, assignments; and the policy's table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from evidence.cases.registry import add_case
from evidence.db import Database
from evidence.errors import Conflict, InvalidInput, NotFound
from evidence.people.accounts import (
    actor_for_token,
    actor_for_user,
    add_user,
    assign_case,
    check_password,
    create_token,
    disable_user,
    revoke_tokens,
    unassign_case,
)
from evidence.people.policy import ROLES, Actor, is_allowed, visible_cases

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database.connect(f"sqlite:///{tmp_path / 'e.db'}")


def test_users_get_a_one_time_password_that_is_stored_hashed(db: Database) -> None:
    created = add_user(db, "Alex Reviewer", ["reviewer"], now=NOW)
    assert len(created["password"]) >= 20
    with db.read() as conn:
        assert check_password(conn, "Alex Reviewer", created["password"]) == created["user"]
        assert check_password(conn, "Alex Reviewer", created["password"] + "x") is None
        assert check_password(conn, "Nobody", created["password"]) is None
        assert check_password(conn, "Alex Reviewer", "x" * 5000) is None
        stored = conn.exec_driver_sql("select password_hash from users").scalar_one()
    assert stored.startswith("$argon2id$")
    assert created["password"] not in stored
    with pytest.raises(Conflict):
        add_user(db, "Alex Reviewer", ["worker"], now=NOW)
    for roles in ([], ["wizard"]):
        with pytest.raises(InvalidInput):
            add_user(db, "X", roles, now=NOW)


def test_a_disabled_user_cannot_log_in_or_use_tokens(db: Database) -> None:
    created = add_user(db, "Sam", ["worker"], now=NOW)
    token = create_token(db, created["user"], now=NOW)["token"]
    with db.read() as conn:
        assert actor_for_token(conn, token, NOW) is not None
    disable_user(db, created["user"], now=NOW)
    with db.read() as conn:
        assert check_password(conn, "Sam", created["password"]) is None
        assert actor_for_token(conn, token, NOW) is None
        assert actor_for_user(conn, created["user"]) is None
    with pytest.raises(Conflict):
        create_token(db, created["user"], now=NOW)
    with pytest.raises(NotFound):
        disable_user(db, "nobody", now=NOW)


def test_tokens_expire_and_can_be_revoked(db: Database) -> None:
    user = add_user(db, "Kim", ["auditor"], now=NOW)["user"]
    short = create_token(db, user, now=NOW, expires_in=60)
    assert short["token"].startswith("evu_")
    lasting = create_token(db, user, now=NOW)["token"]
    with db.read() as conn:
        assert actor_for_token(conn, short["token"], NOW + dt.timedelta(seconds=59)) is not None
        assert actor_for_token(conn, short["token"], NOW + dt.timedelta(seconds=60)) is None
        assert actor_for_token(conn, "evu_unknown", NOW) is None
    assert revoke_tokens(db, user, now=NOW) == 2
    with db.read() as conn:
        assert actor_for_token(conn, lasting, NOW) is None
    with pytest.raises(InvalidInput):
        create_token(db, user, now=NOW, expires_in=0)


def test_assignments_make_the_actors_cases(db: Database) -> None:
    user = add_user(db, "Pat", ["reviewer"], now=NOW)["user"]
    case = add_case(db, "CASE 1", now=NOW)["case"]
    assign_case(db, case, user)
    assign_case(db, case, user)  # idempotent
    with db.read() as conn:
        actor = actor_for_user(conn, user)
    assert actor == Actor(user, "user", frozenset({"reviewer"}), frozenset({case}))
    unassign_case(db, case, user)
    with pytest.raises(NotFound):
        unassign_case(db, case, user)
    with pytest.raises(NotFound):
        assign_case(db, "no-such-case", user)


ASSIGNED, OTHER = "case-assigned", "case-other"
CASE_ACTIONS = ("case.read", "item.read", "item.custody", "item.content")


def person(*roles: str) -> Actor:
    return Actor("u", "user", frozenset(roles), frozenset({ASSIGNED}))


# role -> the case actions allowed on the assigned case and on another case
EXPECTED = {
    "worker": (set(CASE_ACTIONS), set()),
    "supervisor": (set(CASE_ACTIONS), set()),
    "reviewer": (set(CASE_ACTIONS), set()),
    "disclosure": (set(CASE_ACTIONS), set()),
    "auditor": ({"item.custody"}, {"item.custody"}),  # histories only, on every case
    "admin": (set(), set()),
}


@pytest.mark.parametrize("role", ROLES)
def test_the_policy_table(role: str) -> None:
    actor = person(role)
    on_assigned, on_other = EXPECTED[role]
    for action in CASE_ACTIONS:
        assert is_allowed(actor, action, ASSIGNED) == (action in on_assigned), (role, action)
        assert is_allowed(actor, action, OTHER) == (action in on_other), (role, action)
    assert is_allowed(actor, "cases.list")
    assert not is_allowed(actor, "item.upload", ASSIGNED)
    assert not is_allowed(actor, "no.such.action", ASSIGNED)
    assert visible_cases(actor, [ASSIGNED, OTHER]) == sorted(
        c for c, allowed in ((ASSIGNED, on_assigned), (OTHER, on_other)) if "case.read" in allowed
    )


def test_devices_and_nobody() -> None:
    device = Actor("d", "device", frozenset(), frozenset({ASSIGNED}))
    assert is_allowed(device, "item.upload", ASSIGNED)
    assert not is_allowed(device, "item.upload", OTHER)
    for action in (*CASE_ACTIONS, "cases.list"):
        assert not is_allowed(device, action, ASSIGNED)
        assert not is_allowed(None, action, ASSIGNED)

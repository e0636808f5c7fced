"""Helpers of the access tests: a world of people, cases and uploaded items, and checks.

Imported by name (tests/ is on sys.path), like the device kit and media files it uses.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from ingesthelpers import Kit, create, enrolled, patch
from media import mp4_video

from evidence.cases.tables import items
from evidence.chain import merkle
from evidence.chain.checkpoint import verify_checkpoint
from evidence.chain.entries import CustodyEntry, ItemAccessed, ItemIngested, parse_entry
from evidence.chain.manifest import item_id
from evidence.db import Database
from evidence.devices.registry import revoke_device
from evidence.log.custody import CustodyLog
from evidence.people.accounts import add_user, assign_case, create_token, disable_user
from evidence.people.policy import ROLES
from evidence.settings import Settings
from evidence.web.keys import DB, LOG

CALLERS = (
    "anonymous",
    *ROLES,  # admin, supervisor, worker, reviewer, disclosure, auditor
    "disabled",  # a reviewer of the assigned case, since disabled
    "expired",  # a reviewer of the assigned case whose token has expired
    "revoked_device",  # the token of a revoked device
    "device",  # the token of an enrolled device (not a person)
)


def make_settings(data_dir: Path, **env: str) -> Settings:
    environ = {"EVIDENCE_DATA_DIR": str(data_dir), "EVIDENCE_LOG_FORMAT": "json"}
    environ.update({f"EVIDENCE_{name.upper()}": value for name, value in env.items()})
    return Settings.load(environ, stderr_is_tty=False)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_person(db: Database, name: str, roles: list[str], cases: list[str]) -> tuple[str, str]:
    """A person with `roles`, assigned to `cases`, and an API token: (user id, token)."""
    user = add_user(db, name, roles, now=now())["user"]
    for case in cases:
        assign_case(db, case, user)
    return user, create_token(db, user, now=now())["token"]


@dataclass(frozen=True)
class Uploaded:
    item: str
    upload: str  # the tus upload's location
    content: bytes


async def upload(client: Any, kit: Kit, content: bytes, **manifest: Any) -> Uploaded:
    """Upload `content` through tus (create, then a PATCH per half): the committed item."""
    signed, signature = kit.manifest(content, **manifest)
    created = await create(client, kit, signed, signature)
    assert created.status == 201, await created.text()
    location = created.headers["Location"]
    half = len(content) // 2
    offset = 0
    for piece in (content[:half], content[half:]):
        if piece:  # (an empty item is complete once created)
            response = await patch(client, kit, location, offset, piece)
            assert response.status == 204, await response.text()
            offset += len(piece)
    return Uploaded(item_id(signed), location, content)


@dataclass
class World:
    """Two cases with an item each; people of every role assigned to the first.

    `tokens` maps each caller of `CALLERS` but "anonymous" to its bearer token;
    `users` maps the people among them to their ids.
    """

    assigned: Kit
    unassigned: Kit
    item: Uploaded  # in the assigned case
    other_item: Uploaded  # in the unassigned case
    revoked: Kit | None = None  # a device enrolled, then revoked (with `extras`)
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)

    def auth(self, caller: str) -> dict[str, str]:
        return {} if caller == "anonymous" else bearer(self.tokens[caller])


async def build_world(client: Any, roles: tuple[str, ...] = ROLES, *, extras: bool = True) -> World:
    """A `World` in the app behind `client`, made through the real paths.

    `roles`: the people to make (each assigned to the first case, admins and
    auditors included: an assignment gives them nothing). `extras` adds the
    disabled person, the expired token and the revoked and active devices.
    """
    db, log = client.app[DB], client.app[LOG]
    assigned, unassigned = enrolled(log, db, "camera-a"), enrolled(log, db, "camera-b")
    world = World(
        assigned,
        unassigned,
        await upload(client, assigned, mp4_video()),
        await upload(client, unassigned, mp4_video(frames=6)),
    )
    for role in roles:
        world.users[role], world.tokens[role] = add_person(db, role, [role], [assigned.case])
    if extras:
        world.users["disabled"], world.tokens["disabled"] = add_person(
            db, "disabled", ["reviewer"], [assigned.case]
        )
        disable_user(db, world.users["disabled"], now=now())
        world.users["expired"] = add_user(db, "expired", ["reviewer"], now=now())["user"]
        assign_case(db, assigned.case, world.users["expired"])
        world.tokens["expired"] = create_token(
            db, world.users["expired"], now=now() - dt.timedelta(hours=1), expires_in=60
        )["token"]
        world.revoked = enrolled(log, db, "camera-r")
        revoke_device(log, db, world.revoked.device, now=log.clock())
        world.tokens["revoked_device"] = world.revoked.token
        world.tokens["device"] = unassigned.token
    return world


@dataclass(frozen=True)
class Shared:
    """The app of a test module (aiohttp's TestClient) and the world in it."""

    client: Any
    world: World


# -- reading what the log says ------------------------------------------------------------


def log_size(log: CustodyLog) -> int:
    return int(log.size())


def entry_at(log: CustodyLog, index: int) -> CustodyEntry:
    return parse_entry(log.entry(index))


def last_entry_of(db: Database, item: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(sa.select(items.c.last_entry).where(items.c.id == item)).scalar_one()
        )


def verify_custody(history: dict[str, Any], vkey: str, item: str) -> list[tuple[int, CustodyEntry]]:
    """Check a custody answer offline, with the log's key alone; its entries, oldest first.

    The checkpoint verifies with `vkey`; every entry is included in it at its
    index; the first is the item's `item.ingested`, and each later one names
    the one before it as ``prev``.
    """
    checkpoint = verify_checkpoint(history["checkpoint"], vkey)
    assert checkpoint.size == history["size"]
    verified: list[tuple[int, CustodyEntry]] = []
    for answer in history["entries"]:
        data = base64.b64decode(answer["entry"], validate=True)
        proof = [base64.b64decode(h, validate=True) for h in answer["proof"]]
        merkle.verify_inclusion(
            merkle.leaf_hash(data), answer["index"], checkpoint.size, proof, checkpoint.root_hash
        )
        verified.append((answer["index"], parse_entry(data)))
    first_index, first = verified[0]
    assert isinstance(first, ItemIngested)
    assert (first.item, first.prev) == (item, None)
    for (before, _), (_, entry) in itertools.pairwise(verified):
        assert getattr(entry, "item", None) == item
        assert getattr(entry, "prev", None) == before
    assert first_index < verified[-1][0] or len(verified) == 1
    return verified


def accesses(verified: list[tuple[int, CustodyEntry]]) -> list[ItemAccessed]:
    return [entry for _, entry in verified if isinstance(entry, ItemAccessed)]

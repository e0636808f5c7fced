"""Which worker carries which device; a device acts for its worker.

A device uploads only to the cases its worker is assigned to: the policy
(`evidence.people.policy`) sees a device as an actor with its worker's cases.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from evidence.db import Database
from evidence.devices.tables import device_assignments, devices
from evidence.errors import InvalidInput, NotFound
from evidence.people.accounts import actor_for_user, require_user, user_roles_of
from evidence.people.policy import Actor


def actor_for_device(conn: Connection, device: str) -> Actor:
    """A device as an actor: the cases it may upload to are its worker's."""
    worker = conn.execute(
        sa.select(device_assignments.c.user_id).where(device_assignments.c.device_id == device)
    ).scalar_one_or_none()
    person = actor_for_user(conn, worker) if worker is not None else None
    assigned = person.cases if person is not None and "worker" in person.roles else frozenset()
    return Actor(device, "device", frozenset(), assigned)


def assign_device(db: Database, device: str, user: str) -> dict[str, str]:
    """Give `device` to the worker `user` (replacing any previous worker)."""
    with db.write() as conn:
        require_user(conn, user)
        if conn.execute(sa.select(devices.c.id).where(devices.c.id == device)).first() is None:
            raise NotFound(f"no device {device}")
        if "worker" not in user_roles_of(conn, user):
            raise InvalidInput(f"user {user} is not a worker: devices go to workers")
        conn.execute(device_assignments.delete().where(device_assignments.c.device_id == device))
        conn.execute(device_assignments.insert().values(device_id=device, user_id=user))
    return {"device": device, "user": user}

"""Admin commands: `evidence devices ...` and `evidence cases ...`.

They open the same database and custody log as `evidence serve` (same
settings), and work while the server runs: their appends are sequenced by the
same lock in the database, so the log stays one linear log. Each prints JSON
when it creates something.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from evidence.cli.common import config_option, echo_json
from evidence.clock import utc_now
from evidence.db import Database
from evidence.log.custody import CustodyLog
from evidence.logs import configure_logging
from evidence.people.policy import ROLES
from evidence.settings import Settings

# Admin commands read the time here, and the custody log they append to reads the same clock.
clock = utc_now


@contextlib.contextmanager
def opened(config_file: Path | None) -> Iterator[tuple[Database, CustodyLog]]:
    """The service's database and custody log, as `evidence serve` opens them."""
    from evidence.db import open_database
    from evidence.log.custody import open_log

    settings = Settings.load(config_file=config_file)
    configure_logging(settings.log_level, settings.log_format)
    db = open_database(settings)
    try:
        yield db, open_log(settings, db, clock)
    finally:
        db.close()


@click.group("devices")
def devices_group() -> None:
    """Enrol and revoke field devices (service side)."""


@devices_group.command("enroll")
@click.option("--vkey", required=True, help="The device's key (from `evidence device init`).")
@click.option("--name", required=True, help="A name for people: in the database, not the log.")
@config_option
def devices_enroll(vkey: str, name: str, config_file: Path | None) -> None:
    """Enrol a device; print its id and bearer token (shown once, stored hashed)."""
    from evidence.devices.registry import enroll_device

    with opened(config_file) as (db, log):
        echo_json(enroll_device(log, db, vkey, name, now=clock()))


@devices_group.command("revoke")
@click.argument("device")
@config_option
def devices_revoke(device: str, config_file: Path | None) -> None:
    """Revoke DEVICE: its token stops working; the log records the revocation."""
    from evidence.devices.registry import revoke_device

    with opened(config_file) as (db, log):
        echo_json(revoke_device(log, db, device, now=clock()))


@click.group("cases")
def cases_group() -> None:
    """Cases: an opaque id for the log, the council's reference kept in the database."""


@cases_group.command("add")
@click.argument("reference")
@config_option
def cases_add(reference: str, config_file: Path | None) -> None:
    """Create a case for REFERENCE; print its opaque id."""
    from evidence.cases.registry import add_case

    with opened(config_file) as (db, _log):
        echo_json(add_case(db, reference, now=clock()))


@cases_group.command("assign")
@click.argument("case")
@click.argument("user")
@config_option
def cases_assign(case: str, user: str, config_file: Path | None) -> None:
    """Assign USER (a worker, supervisor, reviewer or disclosure officer) to CASE."""
    from evidence.people.accounts import assign_case

    with opened(config_file) as (db, _log):
        echo_json(assign_case(db, case, user))


@cases_group.command("unassign")
@click.argument("case")
@click.argument("user")
@config_option
def cases_unassign(case: str, user: str, config_file: Path | None) -> None:
    """Remove USER's assignment to CASE."""
    from evidence.people.accounts import unassign_case

    with opened(config_file) as (db, _log):
        echo_json(unassign_case(db, case, user))


@devices_group.command("assign")
@click.argument("device")
@click.argument("user")
@config_option
def devices_assign(device: str, user: str, config_file: Path | None) -> None:
    """Give DEVICE to the worker USER: it may upload to the cases USER is assigned to."""
    from evidence.devices.assignments import assign_device

    with opened(config_file) as (db, _log):
        echo_json(assign_device(db, device, user))


@click.group("users")
def users_group() -> None:
    """People: their roles, and disabling them."""


@users_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLES),
    help="A role (repeat for several).",
)
@config_option
def users_add(name: str, roles: tuple[str, ...], config_file: Path | None) -> None:
    """Add a user; print their id and a one-time password (shown once)."""
    from evidence.people.accounts import add_user

    with opened(config_file) as (db, _log):
        echo_json(add_user(db, name, roles, now=clock()))


@users_group.command("disable")
@click.argument("user")
@config_option
def users_disable(user: str, config_file: Path | None) -> None:
    """Disable USER: their sessions and tokens stop working at once."""
    from evidence.people.accounts import disable_user

    with opened(config_file) as (db, _log):
        echo_json(disable_user(db, user, now=clock()))


@click.group("tokens")
def tokens_group() -> None:
    """API bearer tokens for people."""


@tokens_group.command("create")
@click.argument("user")
@click.option("--expires-in", type=int, default=None, help="Seconds until it expires.")
@config_option
def tokens_create(user: str, expires_in: int | None, config_file: Path | None) -> None:
    """Create an API token for USER; print it (shown once, stored hashed)."""
    from evidence.people.accounts import create_token

    with opened(config_file) as (db, _log):
        echo_json(create_token(db, user, now=clock(), expires_in=expires_in))


@tokens_group.command("revoke")
@click.argument("user")
@config_option
def tokens_revoke(user: str, config_file: Path | None) -> None:
    """Revoke every API token of USER at once; print how many were revoked."""
    from evidence.people.accounts import revoke_tokens

    with opened(config_file) as (db, _log):
        echo_json({"user": user, "revoked": revoke_tokens(db, user, now=clock())})

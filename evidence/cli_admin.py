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

from evidence.cli_common import config_option, echo_json
from evidence.custody import CustodyLog
from evidence.db import Database
from evidence.logs import configure_logging
from evidence.settings import Settings


@contextlib.contextmanager
def opened(config_file: Path | None) -> Iterator[tuple[Database, CustodyLog]]:
    """The service's database and custody log, as `evidence serve` opens them."""
    from evidence.app import open_database, open_log

    settings = Settings.load(config_file=config_file)
    configure_logging(settings.log_level, settings.log_format)
    db = open_database(settings)
    try:
        yield db, open_log(settings, db)
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
    from evidence.registry import enroll_device

    with opened(config_file) as (db, log):
        echo_json(enroll_device(log, db, vkey, name))


@devices_group.command("revoke")
@click.argument("device")
@config_option
def devices_revoke(device: str, config_file: Path | None) -> None:
    """Revoke DEVICE: its token stops working; the log records the revocation."""
    from evidence.registry import revoke_device

    with opened(config_file) as (db, log):
        echo_json(revoke_device(log, db, device))


@click.group("cases")
def cases_group() -> None:
    """Cases: an opaque id for the log, the council's reference kept in the database."""


@cases_group.command("add")
@click.argument("reference")
@config_option
def cases_add(reference: str, config_file: Path | None) -> None:
    """Create a case for REFERENCE; print its opaque id."""
    from evidence.registry import add_case

    with opened(config_file) as (db, log):
        echo_json(add_case(db, reference, now=log.clock()))

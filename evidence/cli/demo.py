"""`evidence demo`: something to look at, on a service that was just started.

It does what a newcomer would otherwise do by hand with the admin commands and
the device client: a case, a worker assigned to it with an enrolled device, a
reviewer with a password, then three items (footage with sound, a photo, a
visit record) uploaded by the device through the running server, exactly as
`evidence device upload` does. The admin steps write to the database directly
(as `evidence cases add` does), so the settings must be the server's.

Each run makes a new demo case, numbered: DEMO-1, DEMO-2, ... with its own
people and device, so running it again never clashes with the last run.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from pathlib import Path

import click

from evidence.cli.admin import clock, opened
from evidence.cli.common import config_option
from evidence.cli.device import upload_file
from evidence.db import Database
from evidence.errors import ConfigError, Conflict, Unreachable
from evidence.field.state import DeviceDir
from evidence.log.monitor import normalize_server
from evidence.settings import Settings

DEFAULT_SERVER = "http://127.0.0.1:8080"
MAX_DEMOS = 1000  # DEMO-1 .. DEMO-1000: far more than anyone tries by hand
VKEY_TIMEOUT_SECONDS = 10


def _server_vkey(server: str) -> str:
    try:
        with urllib.request.urlopen(  # noqa: S310 - normalize_server allows only http(s)
            f"{server}/log/vkey", timeout=VKEY_TIMEOUT_SECONDS
        ) as response:
            return str(response.read().decode("utf-8").strip())
    except (OSError, urllib.error.URLError) as exc:
        raise Unreachable(
            f"no evidence server answers at {server} ({exc}): start it with `make run`"
            " (or `evidence serve`), or give its address with --server"
        ) from exc


def _check_same_log(server: str, settings: Settings) -> None:
    """Refuse, before anything is written, settings that are not the running server's."""
    from evidence.log.keys import load_log_signer

    served = _server_vkey(server)
    advice = "run the demo with the settings the server was started with"
    try:
        ours = load_log_signer(settings.log_key_file, settings.log_origin).verifier.vkey
    except ConfigError as exc:
        raise ConfigError(f"{exc}, where these settings put the server's log: {advice}") from exc
    if served != ours:
        raise ConfigError(
            f"the server at {server} keeps another log ({served}) than these settings"
            f" ({ours}, {settings.log_key_file}): {advice}"
        )


def _new_case(db: Database, directory: Path) -> tuple[int, str, str]:
    """The first DEMO-n whose reference and device directory are both free: n, id, reference."""
    from evidence.cases.registry import add_case

    for n in range(1, MAX_DEMOS + 1):
        if (directory / f"camera-{n}").exists():
            continue
        try:
            case = add_case(db, f"DEMO-{n}", now=clock())
        except Conflict:
            continue
        return n, case["case"], case["reference"]
    raise Conflict(f"there are already {MAX_DEMOS} demo cases")


@click.command("demo")
@click.option(
    "--server",
    default=DEFAULT_SERVER,
    show_default=True,
    help="The running service (the one of `make run`).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("evidence-demo"),
    show_default=True,
    help="Where the demo devices and the files they upload are kept.",
)
@config_option
def demo(server: str, directory: Path, config_file: Path | None) -> None:
    """Fill the running service with a demo case and three uploaded items; print how to log in.

    Use the same settings (data directory or database) as the server: the
    people, case and device are written to its database directly.
    """
    from evidence.devices.assignments import assign_device
    from evidence.devices.registry import enroll_device
    from evidence.media import samples  # PyAV: imported only when it is needed
    from evidence.people.accounts import add_user, assign_case

    server = normalize_server(server)
    _check_same_log(server, Settings.load(config_file=config_file))
    with opened(config_file) as (db, log):
        n, case, reference = _new_case(db, directory)
        now = clock()
        worker = add_user(db, f"demo-worker-{n}", ["worker"], now=now)
        reviewer = add_user(db, f"demo-reviewer-{n}", ["reviewer"], now=now)
        for person in (worker, reviewer):
            assign_case(db, case, person["user"])
        device = DeviceDir.init(directory / f"camera-{n}", f"demo-camera-{n}.example")
        enrolled = enroll_device(log, db, device.load().vkey, f"Demo camera {n}", now=now)
        assign_device(db, enrolled["device"], worker["user"])
    device.set_token(enrolled["token"])

    captures = device.path / "captures"
    captures.mkdir(mode=0o700, exist_ok=True)
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    footage = captures / "visit.mp4"
    samples.write_footage(footage)
    photo = captures / "photo.png"
    photo.write_bytes(samples.photo())
    record = captures / "visit-record.json"
    record.write_bytes(samples.visit_record(reference, started.strftime("%Y-%m-%dT%H:%M:%SZ")))

    click.echo(f"demo case {reference} ({case}), uploaded by {device.path}:")
    for file, kind in ((footage, "footage"), (photo, "photo"), (record, "visit-record")):
        done = upload_file(device, server, file, case=case, kind=kind)
        click.echo(f"  {kind:<13} {file.name:<18} log entry {done['index']}, receipt verified")
    click.echo(f"Log in at {server}/login as a reviewer of the case:")
    click.echo(f"  user name: {reviewer['name']}")
    click.echo(f"  password:  {reviewer['password']}")

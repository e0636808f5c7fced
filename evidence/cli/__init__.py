"""The ``evidence`` command line.

``evidence serve``, ``evidence fsck`` and ``evidence log verify``. Every error
raised on purpose is an `EvidenceError`, caught once in `main`: it prints
``error: <message>`` on stderr and exits 1 (2 for bad settings, as for bad
command-line usage; 3 when a server could not be reached, so that a monitor
tells "the log's server is down" from "the log failed verification").
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from aiohttp import web

from evidence import __version__
from evidence.cli.common import config_option
from evidence.errors import ConfigError, EvidenceError, NotFound, Unreachable
from evidence.logs import configure_logging, get_logger
from evidence.settings import Settings

# How long a stopping server lets requests in flight finish.
SHUTDOWN_TIMEOUT_SECONDS = 30.0

EXIT_ERROR = 1
EXIT_CONFIG = 2  # also click's code for bad usage
EXIT_UNREACHABLE = 3

_log = get_logger("evidence.cli")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evidence")
def cli() -> None:
    """Tamper-evident custody of body-camera footage and visit records."""


@cli.command()
@click.option("--host", default=None, help="Address to listen on (EVIDENCE_HOST, 127.0.0.1).")
@click.option("--port", default=None, help="Port to listen on (EVIDENCE_PORT, 8080).")
@config_option
def serve(host: str | None, port: str | None, config_file: Path | None) -> None:
    """Run the web service until SIGINT or SIGTERM."""
    settings = Settings.load(config_file=config_file, overrides={"host": host, "port": port})
    configure_logging(settings.log_level, settings.log_format)
    from evidence.app import create_app  # imported late: `log verify` needs none of it
    from evidence.cli.memory import return_large_blocks

    return_large_blocks()

    asyncio.run(_serve(create_app(settings), settings))


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(app: web.Application, settings: Settings) -> None:
    from evidence.web.keys import LOG

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()  # opens the database and the log (cleanup_ctx)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise EvidenceError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        stop = asyncio.Event()
        received: list[str] = []
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig.name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        log = app[LOG]
        _log.info(
            "server.started",
            url=_url(settings.host, settings.port),
            origin=log.origin,
            vkey=log.vkey,
            database=settings.database_url_redacted,
            data_dir=str(settings.data_dir),
        )
        await stop.wait()
        _log.info("server.stopping", signal=received[0] if received else None)
    finally:
        await runner.cleanup()  # finishes requests in flight, closes the log and database
    _log.info("server.stopped")


@cli.command()
@config_option
def fsck(config_file: Path | None) -> None:
    """Re-derive the custody log from its entries and check everything stored against it.

    Exits 0 when the log is whole, 1 when a problem was found (each is printed).
    """
    settings = Settings.load(config_file=config_file)
    configure_logging(settings.log_level, settings.log_format)
    from evidence.db import Database
    from evidence.log.fsck import fsck as run_fsck
    from evidence.log.keys import load_log_signer

    signer = load_log_signer(settings.log_key_file, settings.log_origin)
    sqlite_path = settings.sqlite_path
    if sqlite_path is not None and not sqlite_path.exists():
        raise NotFound(f"no database at {sqlite_path}")
    db = Database.connect(settings.database_url, migrate=False)  # check it as it is
    try:
        report = run_fsck(db, signer.verifier.vkey)
    finally:
        db.close()
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    counts = (
        f"{report.entries} entries, {report.checkpoints} checkpoints, {report.nodes} subtree hashes"
    )
    if report.ok:
        click.echo(f"ok: {counts} verified (log {signer.name})")
        return
    click.echo(f"FAILED: {len(report.problems)} problems found in {counts}", err=True)
    sys.exit(EXIT_ERROR)


@cli.group("log")
def log_group() -> None:
    """Check a custody log from outside, as an auditor or witness would."""


@log_group.command("verify")
@click.option("--server", required=True, help="Base URL of the evidence server.")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the last verified checkpoint is kept"
    " (default: ~/.config/evidence/monitor-<server>.json).",
)
@click.option(
    "--vkey", default=None, help="Pin this verifier key instead of trusting on first use."
)
def log_verify(server: str, state_file: Path | None, vkey: str | None) -> None:
    """Verify the latest checkpoint and that it extends the last one seen.

    Exits 0 when it does; non-zero, saying why, on any failure (a fork or
    rollback says so loudly, and the state file is left as it was).
    """
    from evidence.log.monitor import default_state_path, verify_log

    path = state_file if state_file is not None else default_state_path(server)
    result = verify_log(server, path, vkey=vkey)
    click.echo(result.summary())


def _add_commands() -> None:
    from evidence.cli.admin import cases_group, devices_group, tokens_group, users_group
    from evidence.cli.demo import demo
    from evidence.cli.device import device_group

    for group in (devices_group, cases_group, users_group, tokens_group, device_group, demo):
        cli.add_command(group)


_add_commands()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        result: Any = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="evidence",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except Unreachable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except EvidenceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()

"""Pieces shared by the command-line modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: $EVIDENCE_CONFIG). Environment variables win over it.",
)


def echo_json(obj: dict[str, Any]) -> None:
    """What a command created, as one line of JSON on stdout."""
    click.echo(json.dumps(obj, sort_keys=True))

"""The one frozen `Settings` of the service, from ``EVIDENCE_*`` variables and a TOML file.

Sources, strongest first:

1. explicit overrides (command-line flags such as ``--port``);
2. the environment: ``EVIDENCE_<NAME>`` for the field ``<name>``;
3. a TOML file (``--config FILE`` or ``EVIDENCE_CONFIG``) whose top-level keys are
   the field names in lower case (``port = 8080``);
4. the defaults below.

Every value is checked at start-up; all bad values are collected and reported
together in one `ConfigError`, one line per value, each naming where the value
came from. Every field is documented in ``docs/settings.md`` (a test checks).
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from evidence.chain import note
from evidence.errors import ConfigError

ENV_PREFIX = "EVIDENCE_"
CONFIG_ENV = "EVIDENCE_CONFIG"

DEFAULT_DATA_DIR = "./evidence-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_LOG_LEVEL = "info"
DEFAULT_S3_REGION = "us-east-1"
# Seven years: a common retention period for children's social-care records.
DEFAULT_S3_RETENTION_DAYS = 2557
# One long body-camera recording, generously; the device states the size up front.
DEFAULT_MAX_UPLOAD_SIZE = 64 << 30
MAX_MAX_UPLOAD_SIZE = 10_000 * (8 << 20)  # staged in at most 10,000 parts of 8 MiB (78 GiB)
# POST /api/v1/items holds an item in memory: visit records, photos, documents.
DEFAULT_MAX_ITEM_SIZE = 32 << 20
MAX_MAX_ITEM_SIZE = 256 << 20
# A hundred years: beyond any retention schedule; a larger number is a typo.
MAX_S3_RETENTION_DAYS = 36500

StoreKind = Literal["local", "s3"]
LogFormat = Literal["json", "console"]

STORES: tuple[StoreKind, ...] = ("local", "s3")
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# S3 bucket names: 3 to 63 lower-case letters, digits, dots and hyphens.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Region names: AWS's (eu-west-2) and whatever MinIO or Ceph were configured with.
_S3_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build them with `Settings.load`; fields are documented in
    ``docs/settings.md``."""

    data_dir: Path
    database_url: str = field(repr=False)  # may carry a password: see `database_url_redacted`
    store: StoreKind
    s3_bucket: str | None
    s3_endpoint_url: str | None
    log_key_file: Path
    log_origin: str | None
    host: str
    port: int
    log_level: str
    log_format: LogFormat
    s3_region: str = DEFAULT_S3_REGION
    s3_retention_days: int = DEFAULT_S3_RETENTION_DAYS
    max_upload_size: int = DEFAULT_MAX_UPLOAD_SIZE
    max_item_size: int = DEFAULT_MAX_ITEM_SIZE
    trust_proxy: bool = False

    @property
    def database_url_redacted(self) -> str:
        """`database_url` without its password, safe to print and log."""
        return redact_url(self.database_url)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when `database_url` is SQLite, else None."""
        if self.database_url.startswith(SQLITE_PREFIX):
            return Path(self.database_url[len(SQLITE_PREFIX) :])
        return None

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        config_file: Path | str | None = None,
        overrides: Mapping[str, Any] | None = None,
        stderr_is_tty: bool | None = None,
    ) -> Settings:
        """Read, check and return the settings; raise `ConfigError` listing every bad value.

        `environ` defaults to `os.environ`; `config_file` defaults to
        ``$EVIDENCE_CONFIG``; `overrides` (field name -> value, None meaning
        "not given") win over everything.
        """
        env = os.environ if environ is None else environ
        if stderr_is_tty is None:
            stderr_is_tty = sys.stderr.isatty()
        problems: list[str] = []
        raw: dict[str, tuple[Any, str]] = {}  # name -> (value, where it came from)

        if config_file is None and env.get(CONFIG_ENV):
            config_file = env[CONFIG_ENV]
        if config_file is not None:
            _read_toml(Path(config_file), raw, problems)
        for name in FIELD_NAMES:
            var = ENV_PREFIX + name.upper()
            if var in env:
                raw[name] = (env[var], var)
        for name, value in (overrides or {}).items():
            if name not in FIELD_NAMES:
                raise ValueError(f"unknown setting {name!r}")
            if value is not None:
                raw[name] = (value, f"--{name.replace('_', '-')}")

        checked = _Checker(raw, problems)
        data_dir = checked.get("data_dir", _check_path, Path(DEFAULT_DATA_DIR))
        data_dir = data_dir.absolute()
        database_url = checked.get(
            "database_url", _check_database_url, f"{SQLITE_PREFIX}{data_dir / 'evidence.db'}"
        )
        store = checked.get("store", _one_of(STORES), "local")
        s3_bucket = checked.get("s3_bucket", _check_bucket, None)
        s3_endpoint_url = checked.get("s3_endpoint_url", _check_http_url, None)
        log_key_file = checked.get("log_key_file", _check_path, data_dir / "log.key").absolute()
        log_origin = checked.get("log_origin", _check_origin, None)
        host = checked.get("host", _check_host, DEFAULT_HOST)
        port = checked.get("port", _check_port, DEFAULT_PORT)
        log_level = checked.get("log_level", _check_log_level, DEFAULT_LOG_LEVEL)
        default_format: LogFormat = "console" if stderr_is_tty else "json"
        log_format = checked.get("log_format", _one_of(LOG_FORMATS), default_format)
        s3_region = checked.get("s3_region", _check_region, DEFAULT_S3_REGION)
        s3_retention_days = checked.get(
            "s3_retention_days", _check_retention_days, DEFAULT_S3_RETENTION_DAYS
        )
        max_upload_size = checked.get(
            "max_upload_size",
            _whole_number(1, MAX_MAX_UPLOAD_SIZE, "bytes"),
            DEFAULT_MAX_UPLOAD_SIZE,
        )
        max_item_size = checked.get(
            "max_item_size", _whole_number(1, MAX_MAX_ITEM_SIZE, "bytes"), DEFAULT_MAX_ITEM_SIZE
        )
        trust_proxy = checked.get("trust_proxy", _check_bool, False)
        if store == "s3" and not s3_bucket:
            problems.append(
                f"{ENV_PREFIX}S3_BUCKET is required when {ENV_PREFIX}STORE is 's3'"
                " (the bucket that holds the evidence objects)"
            )
        if problems:
            raise ConfigError(
                "invalid settings:\n" + "\n".join(f"  - {problem}" for problem in problems)
            )
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            store=store,
            s3_bucket=s3_bucket,
            s3_endpoint_url=s3_endpoint_url,
            log_key_file=log_key_file,
            log_origin=log_origin,
            host=host,
            port=port,
            log_level=log_level,
            log_format=log_format,
            s3_region=s3_region,
            s3_retention_days=s3_retention_days,
            max_upload_size=max_upload_size,
            max_item_size=max_item_size,
            trust_proxy=trust_proxy,
        )


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIX = "postgresql://"


def env_var(name: str) -> str:
    """The environment variable of the setting `name`."""
    return ENV_PREFIX + name.upper()


def redact_url(url: str) -> str:
    """`url` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _read_toml(path: Path, raw: dict[str, tuple[Any, str]], problems: list[str]) -> None:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        problems.append(f"config file {path}: cannot be read ({exc.strerror or exc})")
        return
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"config file {path}: not valid TOML ({exc})")
        return
    for key, value in data.items():
        if key not in FIELD_NAMES:
            known = ", ".join(FIELD_NAMES)
            problems.append(f"config file {path}: unknown setting {key!r} (known: {known})")
            continue
        raw[key] = (value, f"{key} in {path}")


Check = Callable[[Any], Any]


class _Checker:
    """Applies each field's check to its raw value, collecting the problems."""

    def __init__(self, raw: dict[str, tuple[Any, str]], problems: list[str]) -> None:
        self.raw = raw
        self.problems = problems

    def get(self, name: str, check: Check, default: Any) -> Any:
        if name not in self.raw:
            return default
        value, where = self.raw[name]
        try:
            return check(value)
        except _Bad as exc:
            self.problems.append(f"{where}={_show(value)}: {exc}")
            return default


class _Bad(Exception):
    """One bad value; the message says what is wrong and what is expected."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, not {type(value).__name__}")
    if any(ch < " " for ch in value):
        raise _Bad("must not contain control characters")
    return value


def _check_path(value: Any) -> Path:
    text = _text(value).strip()
    if not text:
        raise _Bad("must be a path, not empty")
    return Path(text).expanduser()


def _check_database_url(value: Any) -> str:
    url = _text(value).strip()
    if url.startswith(SQLITE_PREFIX):
        if not url[len(SQLITE_PREFIX) :]:
            raise _Bad("an SQLite URL needs a file path: sqlite:///path/to/evidence.db")
        return url
    if url.startswith(POSTGRES_PREFIX):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise _Bad(f"not a valid PostgreSQL URL ({exc})") from exc
        if not parts.path.strip("/"):
            raise _Bad("a PostgreSQL URL needs a database name: postgresql://user@host:port/db")
        return url
    scheme = url.partition(":")[0] if ":" in url else ""
    hint = f" (scheme {scheme!r} is not supported)" if scheme else ""
    raise _Bad("must be postgresql://user@host:port/db or sqlite:///path/to/file.db" + hint)


def _one_of(allowed: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in allowed:
            raise _Bad("must be one of " + ", ".join(repr(a) for a in allowed))
        return text

    return check


def _check_bucket(value: Any) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    if not _S3_BUCKET.fullmatch(text) or ".." in text:
        raise _Bad("not a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')")
    return text


def _check_http_url(value: Any) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise _Bad(f"not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Bad("must be an http:// or https:// URL with a host")
    return text


def _check_origin(value: Any) -> str | None:
    text = _text(value).strip()
    if not text:
        return None
    if not note.is_valid_key_name(text):
        raise _Bad("a log origin is one word: no spaces and no '+' (e.g. example.org/evidence)")
    return text


def _check_host(value: Any) -> str:
    text = _text(value).strip()
    if not text or any(ch.isspace() for ch in text):
        raise _Bad("must be a host name or IP address to listen on")
    return text


MIN_PORT, MAX_PORT = 1, 65535


def _check_port(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad("must be a whole number, not a boolean")
    if isinstance(value, int):
        number = value
    else:
        text = _text(value).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 5:
            raise _Bad(f"must be a whole number from {MIN_PORT} to {MAX_PORT}")
        number = int(text)
    if not MIN_PORT <= number <= MAX_PORT:
        raise _Bad(f"must be a whole number from {MIN_PORT} to {MAX_PORT}")
    return number


def _check_log_level(value: Any) -> str:
    return cast(str, _one_of(LOG_LEVELS)(value))


def _check_region(value: Any) -> str:
    text = _text(value).strip()
    if not _S3_REGION.fullmatch(text):
        raise _Bad("must be a region name such as us-east-1 (letters, digits, '.', '_', '-')")
    return text


def _whole_number(low: int, high: int, unit: str) -> Callable[[Any], int]:
    """A checker of whole numbers from `low` to `high` (an integer in TOML, digits in env)."""

    def check(value: Any) -> int:
        expected = f"must be a whole number of {unit} from {low} to {high}"
        if isinstance(value, bool):
            raise _Bad(expected + ", not a boolean")
        if isinstance(value, int):
            number = value
        else:
            text = _text(value).strip()
            if not text.isascii() or not text.isdigit() or len(text) > len(str(high)):
                raise _Bad(expected)
            number = int(text)
        if not low <= number <= high:
            raise _Bad(expected)
        return number

    return check


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def _check_bool(value: Any) -> bool:
    """A boolean: true or false in TOML; true/false, 1/0, yes/no or on/off in the environment."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise _Bad(f"must be true or false, not {type(value).__name__}")
    text = _text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Bad("must be true or false (also 1/0, yes/no, on/off)")


def _check_retention_days(value: Any) -> int:
    expected = f"must be a whole number of days from 1 to {MAX_S3_RETENTION_DAYS}"
    if isinstance(value, bool):
        raise _Bad(expected + ", not a boolean")
    if isinstance(value, int):
        number = value
    else:
        text = _text(value).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 6:
            raise _Bad(expected)
        number = int(text)
    if not 1 <= number <= MAX_S3_RETENTION_DAYS:
        raise _Bad(expected)
    return number

"""Structured logging: static event names, ids as fields, JSON lines in production.

Every log line is an *event* with a fixed dotted name (``http.request``,
``log.opened``, ``server.started``) and fields carrying the ids and numbers;
never a sentence with values pasted in. Standard-library loggers (aiohttp,
alembic, SQLAlchemy) go through the same renderer.

Key material, tokens, passwords and evidence bytes are never logged: the
`redact_secrets` processor replaces the values of fields named like secrets,
any string that looks like a private key, the password in URLs, and any bytes
value, whatever the caller passed, also inside nested dicts, lists and tuples.
Inside any text (a library's message, a traceback, which is rendered to text
before redaction) it also replaces credentials (``Bearer ...``, our ``evu_``
and ``evd_`` tokens) and the value of every ``name=value`` pair whose name is
a secret's or a session's. It runs on every line, whichever logger wrote it.

A request that aiohttp cannot parse (a line over its limit, a bad header, a
body not in its Content-Encoding) is the client's doing, not the server's: it
is logged as one ``http.bad_request`` line with the status and the error's
class, never with aiohttp's message (which quotes the start of the line,
credentials included) nor a traceback (`ClientErrorFilter`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import IO, Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from evidence.chain.note import PRIVATE_KEY_PREFIX
from evidence.settings import redact_url

REDACTED = "[redacted]"
# How deep `redact_secrets` looks into dicts, lists and tuples: deeper than any
# event of ours nests. A value nested deeper (or one that contains itself) is
# replaced whole rather than logged unchecked.
MAX_REDACT_DEPTH = 8
_HANDLER_NAME = "evidence"

# Field names whose values are secrets. "vkey" (a public verifier key) and
# "key_file" (a path) are deliberately not matched.
_SECRET_NAME = re.compile(
    r"token|passw(or)?d|secret|skey|seed|private|authori[sz]ation|cookie|credential"
    r"|signing_key|api_key|^key$",
    re.IGNORECASE,
)
# Libraries whose DEBUG and INFO records carry data, not events: SQLAlchemy logs
# statements and result rows (an upload's tail is evidence bytes), botocore,
# s3transfer and urllib3 log request bodies (an object's bytes). Below WARNING,
# their records are dropped by the handler, whatever level a logger is set to.
_DATA_LOGGERS = ("sqlalchemy", "botocore", "boto3", "s3transfer", "urllib3")
# A URL inside any text; `redact_url` takes the password out of each one.
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
# Secrets inside any text (the scheme or name before each stays): credentials of an
# Authorization header, our tokens by their prefix (evidence.people,
# evidence.registry), and the value of a name=value pair (query string, form,
# cookie) whose name is a secret's or a session's. A name is matched from the start
# of its word only (the lookbehind): tried from every character, as it was, a 64-character
# id cost a quarter of a millisecond, a quarter of the server's time per small item.
_SECRET_TEXT = re.compile(
    r"(?P<keep>(?i:\b(?:bearer|basic|digest)\s+))[^\s'\",;]+"
    r"|\bev[ud]_[A-Za-z0-9_-]+"
    r"|(?P<name>(?<![\w.-])[\w.-]*(?i:token|passw(?:or)?d|secret|session|cookie|csrf|credential"
    r"|authori[sz]ation|api_?key|skey|seed)[\w.-]*\s*=\s*)[^\s&;,'\"]+"
)
# Text whose lower case holds none of these cannot match `_SECRET_TEXT`: most values
# (ids, paths) are let through after a few substring searches.
_SECRET_HINTS = (
    "bearer", "basic", "digest", "token", "passw", "secret", "session", "cookie", "csrf",
    "credential", "authori", "key", "seed", "evu_", "evd_",
)  # fmt: skip


def _redact_url_match(match: re.Match[str]) -> str:
    url = match.group()
    return redact_url(url) if "@" in url else url


def _redact_secret_match(match: re.Match[str]) -> str:
    kept = match.group("keep") or match.group("name") or ""
    return kept + REDACTED


def redact_text(text: str) -> str:
    """`text` without the secrets it may quote (see the module docstring)."""
    if PRIVATE_KEY_PREFIX in text:
        return REDACTED
    if "://" in text and "@" in text:
        text = _URL.sub(_redact_url_match, text)
    lowered = text.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return text
    return _SECRET_TEXT.sub(_redact_secret_match, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes redacted]"
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact(name: object, value: Any, depth: int) -> Any:
    """`value` of the field `name` without secrets, looking inside containers; never in place."""
    if isinstance(name, str) and _SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_REDACT_DEPTH:
        return REDACTED
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a named tuple: its names count
        value = value._asdict()
    if isinstance(value, Mapping):
        return {key: _redact(key, item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_redact(None, item, depth + 1) for item in value]
        # A tuple stays a tuple (a plain one): structlog reads ``exc_info`` as one.
        return tuple(items) if isinstance(value, tuple) else items
    return _redact_value(value)


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop secret values from every event (see module docstring).

    Fields nested in dicts, lists and tuples are redacted too, down to
    `MAX_REDACT_DEPTH`; the caller's containers are copied, never changed.
    """
    for name, value in list(event_dict.items()):
        event_dict[name] = _redact(name, value, 0)
    return event_dict


def _not_library_data(record: logging.LogRecord) -> bool:
    """Handler filter: False for a DEBUG or INFO record of one of `_DATA_LOGGERS`."""
    if record.levelno >= logging.WARNING:
        return True
    return not any(
        record.name == name or record.name.startswith(name + ".") for name in _DATA_LOGGERS
    )


def configure_logging(
    level: str = "info", fmt: str = "json", stream: IO[str] | None = None
) -> None:
    """Send structlog and standard-library logging to `stream` (stderr) as `fmt` lines.

    `fmt` is ``"json"`` (one JSON object a line, for production) or
    ``"console"`` (for people at a terminal).
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # A traceback becomes text here, so that it is redacted like the rest.
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(_BAD_REQUEST_FIELDS), *shared],
        processors=final,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(ClientErrorFilter())
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_not_library_data)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # configured before: replace, don't duplicate
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's own access log is replaced by `access_log_middleware`; Alembic's
    # step-by-step chatter is not worth a line each at every start.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in _DATA_LOGGERS:  # their records below WARNING are dropped anyway
        logging.getLogger(name).setLevel(logging.WARNING)


_BAD_REQUEST_FIELDS = ("status", "error")


def is_client_payload_error(exc: BaseException) -> bool:
    """Did aiohttp fail to read a request through the client's fault?

    A request line or header it cannot parse, a body not in its
    Content-Encoding, cut short or badly chunked: never the server's error.
    """
    if isinstance(exc, RequestPayloadError):
        return True
    return isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500


class ClientErrorFilter(logging.Filter):
    """aiohttp's log of a request it could not parse becomes one ``http.bad_request`` line.

    aiohttp logs such a request as an error with its traceback and a message
    quoting the start of the offending line: noise that anyone can cause
    without logging in, and a leak of whatever credentials the line held.
    The line keeps only the status and the error's class. A body that cannot
    be read (not in its Content-Encoding) was already answered and logged by
    `evidence.web.error_middleware` (or refused unread); aiohttp meets its
    error again while discarding the rest of it, and that record is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiohttp.") or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if exc is None or not is_client_payload_error(exc):
            return True
        if isinstance(exc, RequestPayloadError):
            return False
        record.msg, record.args = "http.bad_request", ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.status = getattr(exc, "code", 400)
        record.error = type(exc).__name__
        if record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def get_logger(name: str = "evidence") -> Any:
    """A structlog logger; call it with a static event name and fields."""
    return structlog.get_logger(name)


_access = get_logger("evidence.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log one ``http.request`` event per request: method, path (no query), status, duration.

    Binds a fresh ``request_id`` for every event logged while handling the
    request and returns it in the ``X-Request-Id`` header.
    """
    request_id = uuid.uuid4().hex
    start = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers["X-Request-Id"] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-Id"] = request_id
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it)
            raise
        finally:
            _access.info(
                "http.request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
            )

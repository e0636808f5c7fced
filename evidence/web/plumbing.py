"""Web plumbing shared by every route: the one error middleware and request helpers.

Errors become JSON in one place, `error_middleware`:

* an `EvidenceError` becomes ``{"error": exc.code, "detail": str(exc)}`` with
  ``exc.http_status``;
* aiohttp's 404 and 405 (unknown route, wrong method) become the same JSON
  shape; other aiohttp HTTP exceptions pass through unchanged;
* anything else is a bug: it is logged with its traceback on the server and the
  client gets a 500 ``{"error": "internal", "detail": "internal error"}``, never
  a traceback.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from evidence.errors import EvidenceError, InvalidInput
from evidence.logs import get_logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_log = get_logger("evidence.web.plumbing")

# Decimal parameters: an index or a tree size fits in a signed 64-bit database
# column. 19 digits hold every such number; longer input is refused before
# conversion, so an absurdly long number costs nothing.
MAX_DECIMAL = (1 << 63) - 1
MAX_DECIMAL_DIGITS = 19
_DECIMAL = re.compile(r"0|[1-9][0-9]*")

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_NONE = "no-cache"
NO_STORE = "private, no-store"  # personal data and evidence: never kept by a browser or proxy

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def json_error(status: int, code: str, detail: str, **kwargs: Any) -> web.Response:
    """The one shape of every error response."""
    return web.json_response({"error": code, "detail": detail}, status=status, **kwargs)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except EvidenceError as exc:
        if exc.http_status >= 500:
            _log.error(
                "http.error",
                code=exc.code,
                status=exc.http_status,
                detail=str(exc),
                method=request.method,
                path=request.path,
            )
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return json_error(exc.http_status, exc.code, str(exc), headers=headers)
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status)
        if code is None:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_error(exc.status, code, exc.reason, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("http.unhandled_error", method=request.method, path=request.path)
        return json_error(500, "internal", "internal error")


# Every response: no script, style or frame from elsewhere, no framing of our
# pages (clickjacking), forms post only to us, and no Referer carrying our URLs
# (item ids, case ids) to another site. Pages with personal data add
# ``Cache-Control: no-store`` themselves.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def setup_web(app: web.Application) -> None:
    """Install the headers every response carries."""
    app.on_response_prepare.append(_security_headers)


def parse_decimal(text: str, name: str) -> int:
    """A non-negative decimal integer written plainly: no sign, spaces or leading zeros.

    Raises `InvalidInput` naming the parameter otherwise.
    """
    if len(text) > MAX_DECIMAL_DIGITS:
        raise InvalidInput(f"{name} is too long: at most {MAX_DECIMAL_DIGITS} digits")
    if not _DECIMAL.fullmatch(text) or not text.isascii():
        raise InvalidInput(
            f"{name} must be a non-negative decimal integer without sign, spaces or leading zeros"
        )
    value = int(text)
    if value > MAX_DECIMAL:
        raise InvalidInput(f"{name} is out of range: at most {MAX_DECIMAL}")
    return value


def query_decimal(request: web.Request, name: str) -> int:
    """The query parameter `name`, given exactly once, as a plain decimal (`parse_decimal`)."""
    values = request.query.getall(name, [])
    if not values:
        raise InvalidInput(f"query parameter {name} is required")
    if len(values) > 1:
        raise InvalidInput(f"query parameter {name} is given more than once")
    return parse_decimal(values[0], name)


def path_decimal(request: web.Request, name: str) -> int:
    """The path parameter `name` as a plain decimal (`parse_decimal`)."""
    return parse_decimal(request.match_info[name], name)

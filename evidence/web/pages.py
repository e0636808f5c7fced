"""Server-rendered pages: Jinja2 templates (evidence/web/templates), autoescaped.

Every value a template shows is escaped by Jinja2 (autoescape is on for every
template), so no page is ever built from HTML in Python strings. Pages carry
``Cache-Control: no-store``: they show personal data and a session's CSRF token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web


def setup_pages(app: web.Application) -> None:
    """Make the templates available to `render`."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("evidence.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
    )


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """The page `template` with `context`, never cached."""
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response

# ruff: noqa: E501  (the table below is one row per endpoint, one column per caller)
"""Who gets what: every caller against every endpoint, as one table. The table is the spec.

Callers: anonymous; a person of each role, every one of them assigned to the
first case (an assignment gives an admin or an auditor nothing: their role
decides); a disabled reviewer of that case; a reviewer of it whose token has
expired; a revoked device's token; an enrolled device's token.

Paths: {case} is the case everyone is assigned to, {other_case} a case nobody
of the table is assigned to, {item}/{other_item} an item in each, {nocase} and
{noitem} ids that do not exist, {upload} the tus upload of {item} (by another
device than the table's "device"). The order of checks is 401 (nobody), 404
(no such case or item), 403 (known but forbidden: see evidence.people.policy).

Every route of the application is in the table: the test enumerates
``create_app(...).router`` and fails, naming the route, for any route that no
row reaches, so a new route cannot skip the table (and the policy it shows).
A GET route's HEAD twin is answered as the GET, without a body: its rows are
the GET rows, made with `head_rows` and requested too. The public routes (the
log, the login pages) are rows like any other, public for every caller; the
login pages know people by their session cookie, not a bearer token, so every
caller of the table is a stranger to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from accesshelpers import CALLERS, Shared, make_settings
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from evidence.app import create_app

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop of the `shared` app

NOCASE = "0" * 32
NOITEM = "0" * 64

# fmt: off
TABLE: list[tuple[str, tuple[int, ...]]] = [
    # endpoint                                       anon adm  sup  wrk  rev  dis  aud  dsbl expd rdev dev
    ("GET /api/v1/cases",                            (401, 200, 200, 200, 200, 200, 200, 401, 401, 401, 401)),
    ("GET /api/v1/cases/{case}/items",               (401, 403, 200, 200, 200, 200, 403, 401, 401, 401, 401)),
    ("GET /api/v1/cases/{other_case}/items",         (401, 403, 403, 403, 403, 403, 403, 401, 401, 401, 401)),
    ("GET /api/v1/cases/{nocase}/items",             (401, 404, 404, 404, 404, 404, 404, 401, 401, 401, 401)),
    ("GET /api/v1/items/{item}",                     (401, 403, 200, 200, 200, 200, 403, 401, 401, 401, 401)),
    ("GET /api/v1/items/{other_item}",               (401, 403, 403, 403, 403, 403, 403, 401, 401, 401, 401)),
    ("GET /api/v1/items/{noitem}",                   (401, 404, 404, 404, 404, 404, 404, 401, 401, 401, 401)),
    ("GET /api/v1/items/{item}/content",             (401, 403, 200, 200, 200, 200, 403, 401, 401, 401, 401)),
    ("GET /api/v1/items/{item}/content?download=1",  (401, 403, 200, 200, 200, 200, 403, 401, 401, 401, 401)),
    ("GET /api/v1/items/{other_item}/content",       (401, 403, 403, 403, 403, 403, 403, 401, 401, 401, 401)),
    ("GET /api/v1/items/{noitem}/content",           (401, 404, 404, 404, 404, 404, 404, 401, 401, 401, 401)),
    ("GET /api/v1/items/{item}/custody",             (401, 403, 200, 200, 200, 200, 200, 401, 401, 401, 401)),
    ("GET /api/v1/items/{other_item}/custody",       (401, 403, 403, 403, 403, 403, 200, 401, 401, 401, 401)),
    ("GET /api/v1/items/{noitem}/custody",           (401, 404, 404, 404, 404, 404, 404, 401, 401, 401, 401)),
    # tus and device routes: devices only (a person's token is not a device's)
    ("OPTIONS /api/v1/uploads",                      (204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204)),
    ("POST /api/v1/uploads",                         (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 400)),
    ("HEAD {upload}",                                (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 404)),
    ("GET {upload}/receipt",                         (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 404)),
    ("GET /api/v1/items/{item}/receipt",             (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 200)),
    ("PATCH {upload}",                               (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 404)),
    ("DELETE {upload}",                              (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 404)),
    ("POST /api/v1/items",                           (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 400)),
    # the public log
    ("GET /log/checkpoint",                          (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/vkey",                                (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/entries/0",                           (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/proof/inclusion?index=0&size=2",      (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/proof/consistency?old=1&new=2",       (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    # the login pages: public; no bearer token signs anyone in (sessions are cookies)
    ("GET /login",                                   (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("POST /login",                                  (400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400)),
    ("POST /logout",                                 (400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400)),
    ("GET /",                                        (303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303)),
]
# fmt: on


def head_rows(table: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    """The HEAD rows of a table's GET rows (a GET route's HEAD twin answers as the GET).

    Not for the GET routes without a HEAD twin (content reads), nor where the
    table has its own HEAD row for the path (tus, whose HEAD is its own handler).
    """
    explicit = {endpoint.partition(" ")[2] for endpoint, _ in table if endpoint.startswith("HEAD ")}
    return [
        ("HEAD " + endpoint.removeprefix("GET "), statuses)
        for endpoint, statuses in table
        if endpoint.startswith("GET ")
        and endpoint.removeprefix("GET ") not in explicit
        and "/content" not in endpoint
    ]


ALL_ROWS = TABLE + head_rows(TABLE)

CASES = [
    pytest.param(endpoint, caller, expected, id=f"{endpoint} as {caller}")
    for endpoint, statuses in ALL_ROWS
    for caller, expected in zip(CALLERS, statuses, strict=True)
]


def _url(endpoint: str, shared: Shared) -> tuple[str, str]:
    world = shared.world
    method, _, path = endpoint.partition(" ")
    return method, path.format(
        case=world.assigned.case,
        other_case=world.unassigned.case,
        nocase=NOCASE,
        item=world.item.item,
        other_item=world.other_item.item,
        noitem=NOITEM,
        upload=world.item.upload,
    )


@in_module_loop
@pytest.mark.parametrize(("endpoint", "caller", "expected"), CASES)
async def test_authorization(shared: Shared, endpoint: str, caller: str, expected: int) -> None:
    method, url = _url(endpoint, shared)
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "0", **shared.world.auth(caller)}
    if method == "PATCH":  # a well-formed tus PATCH: only who asks decides
        headers |= {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    response = await shared.client.request(method, url, headers=headers, allow_redirects=False)
    body = await response.read()
    assert response.status == expected, body[:300]
    if method == "HEAD":
        assert body == b""
    elif expected >= 400 and "/uploads" not in url and "text/html" not in response.content_type:
        error: Any = await response.json()
        assert set(error) == {"error", "detail"}


def _route_name(route: web.AbstractRoute) -> str:
    resource = route.resource
    return f"{route.method} {resource.canonical if resource is not None else '?'}"


async def _route_of(app: web.Application, endpoint: str) -> str:
    """The route of `app` that a row's request reaches ("METHOD /canonical/{path}")."""
    method, _, path = endpoint.partition(" ")
    url = path.format(
        case=NOCASE,
        other_case=NOCASE,
        nocase=NOCASE,
        item=NOITEM,
        other_item=NOITEM,
        noitem=NOITEM,
        upload="/api/v1/uploads/" + "0" * 32,
    )
    match = await app.router.resolve(make_mocked_request(method, url, app=app))
    if match.http_exception is not None:
        raise AssertionError(f"the row {endpoint!r} reaches no route ({match.http_exception})")
    return _route_name(match.route)


async def test_every_route_of_the_app_is_in_the_table(tmp_path: Path) -> None:
    """Enumerates the real app's router: a route that no row reaches fails, by name."""
    app = create_app(make_settings(tmp_path / "data"))  # built, not started: only its routes
    routes = {_route_name(route) for route in app.router.routes()}
    assert "GET /log/checkpoint" in routes  # the enumeration sees the app's routes
    reached = {await _route_of(app, endpoint) for endpoint, _ in ALL_ROWS}
    missing = sorted(routes - reached)
    assert not missing, f"routes missing from the authorisation table: {missing}"
    assert all(len(statuses) == len(CALLERS) for _, statuses in TABLE)


@in_module_loop
async def test_each_person_lists_only_the_cases_they_may_see(shared: Shared) -> None:
    world = shared.world
    assert world.revoked is not None
    assigned = {"id": world.assigned.case, "reference": "CASE/camera-a"}
    expected = {
        "admin": [],
        "supervisor": [assigned],
        "worker": [assigned],
        "reviewer": [assigned],
        "disclosure": [assigned],
        "auditor": [],  # custody histories only: no case references
    }
    for caller, cases in expected.items():
        response = await shared.client.get("/api/v1/cases", headers=world.auth(caller))
        assert (await response.json()) == {"cases": cases}, caller
        assert response.headers["Cache-Control"] == "private, no-store"

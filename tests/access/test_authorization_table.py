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
"""

from __future__ import annotations

from typing import Any

import pytest
from accesshelpers import CALLERS, Shared

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
    ("POST /api/v1/items",                           (401, 401, 401, 401, 401, 401, 401, 401, 401, 403, 400)),
    # the public log
    ("GET /log/checkpoint",                          (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/vkey",                                (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/entries/0",                           (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/proof/inclusion?index=0&size=2",      (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
    ("GET /log/proof/consistency?old=1&new=2",       (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200)),
]
# fmt: on

CASES = [
    pytest.param(endpoint, caller, expected, id=f"{endpoint} as {caller}")
    for endpoint, statuses in TABLE
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
    response = await shared.client.request(method, url, headers=headers)
    body = await response.read()
    assert response.status == expected, body[:300]
    if expected >= 400 and method != "HEAD" and "/uploads" not in url:
        error: Any = await response.json()
        assert set(error) == {"error", "detail"}


def test_the_table_names_every_people_endpoint_with_every_caller() -> None:
    """Each people route appears, and each row has a status for every caller."""
    endpoints = {endpoint.split("?")[0] for endpoint, _ in TABLE}
    for route in (
        "GET /api/v1/cases",
        "GET /api/v1/cases/{case}/items",
        "GET /api/v1/items/{item}",
        "GET /api/v1/items/{item}/content",
        "GET /api/v1/items/{item}/custody",
    ):
        assert route in endpoints
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

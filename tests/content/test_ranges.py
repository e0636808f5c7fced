"""HTTP Range on content (RFC 9110 section 14): the rules of evidence.content.ranges, never a 500.

One satisfiable range: 206 with Content-Range. No Range, another unit, or
several ranges: the whole item, 200. Unsatisfiable or malformed ``bytes=``:
416 with ``Content-Range: bytes */SIZE`` and a JSON error.
"""

from __future__ import annotations

import pytest
import pytest_asyncio
from accesshelpers import Shared, upload

from evidence.content.ranges import RangeNotSatisfiable, parse_range

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop of the `shared` app

WHOLE = None  # 200 with every byte
# Range header -> the bytes [start, end) of a 6,000-byte item sent with 206, WHOLE or 416.
SIZE = 6000
RANGES: list[tuple[str, tuple[int, int] | int | None]] = [
    ("bytes=0-0", (0, 1)),
    ("bytes=-5", (SIZE - 5, SIZE)),
    ("bytes=5-", (5, SIZE)),
    ("bytes=5-9", (5, 10)),
    ("bytes=0-", (0, SIZE)),
    (f"bytes={SIZE - 1}-{SIZE - 1}", (SIZE - 1, SIZE)),
    (f"bytes=10-{SIZE * 2}", (10, SIZE)),  # a last byte past the end is the end
    ("bytes=-999999", (0, SIZE)),  # a suffix longer than the item is all of it
    ("bytes=0-" + "9" * 40, (0, SIZE)),  # a huge last position: still the end
    ("bytes=-" + "9" * 5000, (0, SIZE)),  # thousands of digits: no int() trouble
    ("BYTES=7-8", (7, 9)),  # the unit is case-insensitive
    ("bytes= 7-8 ", (7, 9)),
    ("bytes=7-8,", (7, 9)),  # an empty list element is allowed and ignored
    ("bytes=007-008", (7, 9)),  # leading zeros are digits like any other
    ("bytes=0-0,-1", WHOLE),  # several ranges: the whole item
    ("bytes=0-1,2-3,4-5", WHOLE),
    ("bytes=5-2,x", WHOLE),  # several "ranges", however odd: ignored as a whole
    ("items=0-5", WHOLE),  # a unit we do not know: ignored (RFC 9110 section 14.2)
    ("garbage", WHOLE),
    ("", WHOLE),
    (f"bytes={SIZE}-", 416),  # starts at the end
    (f"bytes={SIZE}-{SIZE + 10}", 416),
    ("bytes=" + "9" * 40 + "-", 416),
    ("bytes=-0", 416),  # a suffix of no byte
    ("bytes=5-2", 416),  # last before first: malformed
    ("bytes=abc", 416),
    ("bytes=", 416),
    ("bytes=-", 416),
    ("bytes=--1", 416),
    ("bytes=1-2-3", 416),
    ("bytes=+1-2", 416),
    ("bytes=1.5-2", 416),
    ("bytes=\u0661-\u0662", 416),  # Arabic-Indic digits are not DIGIT
    ("bytes=,", 416),
]


def _text(size: int) -> bytes:
    return bytes(48 + n % 10 for n in range(size))  # digits: valid UTF-8 text


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def texts(shared: Shared) -> dict[int, str]:
    """A text/plain document of SIZE bytes in the assigned case: {SIZE: its item id}."""
    kit = shared.world.assigned
    text = await upload(shared.client, kit, _text(SIZE), kind="document", media_type="text/plain")
    return {SIZE: text.item}


@in_module_loop
@pytest.mark.parametrize(("header", "expected"), RANGES, ids=[h[:40] for h, _ in RANGES])
async def test_range(
    shared: Shared, texts: dict[int, str], header: str, expected: tuple[int, int] | int | None
) -> None:
    content = _text(SIZE)
    response = await shared.client.get(
        f"/api/v1/items/{texts[SIZE]}/content",
        headers={**shared.world.auth("reviewer"), "Range": header},
    )
    body = await response.read()
    assert response.headers["Accept-Ranges"] == "bytes"
    if expected == 416:
        assert response.status == 416, body
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"
        assert (await response.json())["error"] == "range_not_satisfiable"
    elif expected is WHOLE:
        assert response.status == 200
        assert "Content-Range" not in response.headers
        assert body == content
    else:
        assert isinstance(expected, tuple)
        start, end = expected
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
        assert int(response.headers["Content-Length"]) == end - start
        assert body == content[start:end]
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


EMPTY_RANGES: list[tuple[str | None, int]] = [
    (None, 200),
    ("items=1-2", 200),
    ("bytes=0-0", 416),
    ("bytes=0-", 416),
    ("bytes=-5", 416),
]


def test_every_range_of_an_empty_item_is_unsatisfiable() -> None:
    for header, status in EMPTY_RANGES:
        if status == 416:
            with pytest.raises(RangeNotSatisfiable):
                parse_range(header, 0)
        else:
            assert parse_range(header, 0) is None


@in_module_loop
async def test_ranges_of_an_empty_item(shared: Shared) -> None:
    kit = shared.world.assigned
    item = (await upload(shared.client, kit, b"", kind="document", media_type="text/plain")).item
    for header, status in EMPTY_RANGES:
        headers = {**shared.world.auth("reviewer"), **({"Range": header} if header else {})}
        response = await shared.client.get(f"/api/v1/items/{item}/content", headers=headers)
        body = await response.read()
        assert response.status == status
        if status == 200:
            assert (body, response.headers["Content-Length"]) == (b"", "0")
        else:
            assert response.headers["Content-Range"] == "bytes */0"


@in_module_loop
@pytest.mark.parametrize(
    "query", ["download=2", "download=yes", "download=1&download=1", "download="]
)
async def test_a_bad_download_parameter_is_400(shared: Shared, query: str) -> None:
    response = await shared.client.get(
        f"/api/v1/items/{shared.world.item.item}/content?{query}",
        headers=shared.world.auth("reviewer"),
    )
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_input"


@in_module_loop
async def test_head_of_content_is_not_served(shared: Shared) -> None:
    """HEAD would be an access without bytes: content is GET only."""
    response = await shared.client.head(
        f"/api/v1/items/{shared.world.item.item}/content", headers=shared.world.auth("reviewer")
    )
    assert response.status == 405


def test_parse_range_matches_the_table() -> None:
    for header, expected in RANGES:
        if expected == 416:
            with pytest.raises(RangeNotSatisfiable):
                parse_range(header, SIZE)
        else:
            assert parse_range(header, SIZE) == expected, header
    assert parse_range(None, SIZE) is None


@in_module_loop
@pytest.mark.parametrize("validator", ['"abc"', "Tue, 24 Nov 2026 09:00:00 GMT"])
async def test_if_range_never_matches_so_the_whole_item_is_sent(
    shared: Shared, texts: dict[int, str], validator: str
) -> None:
    response = await shared.client.get(
        f"/api/v1/items/{texts[SIZE]}/content",
        headers={**shared.world.auth("reviewer"), "Range": "bytes=5-9", "If-Range": validator},
    )
    assert response.status == 200
    assert await response.read() == _text(SIZE)

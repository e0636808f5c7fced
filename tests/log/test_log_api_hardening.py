"""Attacks and bad input on the log API: always a 4xx JSON error, never a 500 or a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apphelpers import access_entries

from evidence.app import create_app
from evidence.chain import note
from evidence.db import Database
from evidence.errors import StorageUnavailable
from evidence.log.custody import CustodyLog, SignedCheckpoint
from evidence.log.keys import load_or_create_log_signer
from evidence.settings import Settings
from evidence.web.keys import LOG

# Every way to write a number wrongly, each with why it must be refused.
BAD_NUMBERS = {
    "empty": "",
    "letters": "abc",
    "plus_sign": "+1",
    "minus_sign": "-1",
    "leading_space": " 1",
    "trailing_space": "1 ",
    "leading_zero": "01",
    "exponent": "1e3",
    "hex": "0x10",
    "decimal_point": "1.0",
    "underscore": "1_0",
    "fullwidth_digit": "\uff11",
    "arabic_indic_digit": "\u0661",
    "absurdly_long": "9" * 1000,
    "just_past_int64": str(1 << 63),
    "null_byte": "1\x00",
}


async def _assert_json_400(resp: Any) -> dict[str, Any]:
    assert resp.status == 400, await resp.text()
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = await resp.json()
    assert body["error"] == "invalid_input"
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


@pytest.fixture
async def client_with_entries(client: Any) -> Any:
    """A log of size 4."""
    for entry in access_entries(3):
        await client.app[LOG].append(entry)
    return client


@pytest.mark.parametrize("bad", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
@pytest.mark.parametrize("param", ["index", "size"])
async def test_inclusion_proof_refuses_malformed_number(
    client_with_entries: Any, param: str, bad: str
) -> None:
    params = {"index": "0", "size": "2", param: bad}
    body = await _assert_json_400(
        await client_with_entries.get("/log/proof/inclusion", params=params)
    )
    assert param in body["detail"]


@pytest.mark.parametrize("bad", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
@pytest.mark.parametrize("param", ["old", "new"])
async def test_consistency_proof_refuses_malformed_number(
    client_with_entries: Any, param: str, bad: str
) -> None:
    params = {"old": "1", "new": "2", param: bad}
    body = await _assert_json_400(
        await client_with_entries.get("/log/proof/consistency", params=params)
    )
    assert param in body["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/log/proof/inclusion", {"size": "2"}),
        ("/log/proof/inclusion", {"index": "0"}),
        ("/log/proof/inclusion", {}),
        ("/log/proof/consistency", {"new": "2"}),
        ("/log/proof/consistency", {"old": "1"}),
    ],
)
async def test_proofs_refuse_missing_parameters(
    client_with_entries: Any, path: str, params: dict[str, str]
) -> None:
    body = await _assert_json_400(await client_with_entries.get(path, params=params))
    assert "required" in body["detail"]


async def test_proofs_refuse_a_parameter_given_twice(client_with_entries: Any) -> None:
    body = await _assert_json_400(
        await client_with_entries.get("/log/proof/inclusion?index=0&index=1&size=2")
    )
    assert "more than once" in body["detail"]


@pytest.mark.parametrize(
    ("index", "size"),
    [
        ("0", "0"),  # no inclusion in the empty tree
        ("2", "2"),  # index must be below size
        ("5", "2"),
        ("0", "5"),  # size beyond the log (4)
        ("0", str((1 << 63) - 1)),
    ],
)
async def test_inclusion_proof_refuses_out_of_range(
    client_with_entries: Any, index: str, size: str
) -> None:
    await _assert_json_400(
        await client_with_entries.get("/log/proof/inclusion", params={"index": index, "size": size})
    )


@pytest.mark.parametrize(("old", "new"), [("3", "2"), ("0", "5"), ("5", "5"), ("4", "9")])
async def test_consistency_proof_refuses_out_of_range(
    client_with_entries: Any, old: str, new: str
) -> None:
    await _assert_json_400(
        await client_with_entries.get("/log/proof/consistency", params={"old": old, "new": new})
    )


@pytest.mark.parametrize(
    "raw",
    ["abc", "-1", "+1", "01", "%201", "1%20", "1.0", "9" * 1000, str(1 << 63), "%EF%BC%91"],
)
async def test_entry_refuses_malformed_index(client: Any, raw: str) -> None:
    body = await _assert_json_400(await client.get(f"/log/entries/{raw}"))
    assert "index" in body["detail"]


async def test_entry_past_the_end_is_404_and_the_largest_index_too(client: Any) -> None:
    for index in ("1", str((1 << 63) - 1)):
        resp = await client.get(f"/log/entries/{index}")
        assert resp.status == 404
        assert (await resp.json())["error"] == "not_found"


async def test_request_line_too_long_for_the_parser_is_a_4xx(client: Any) -> None:
    """aiohttp's HTTP parser refuses it before any handler runs (so not as JSON)."""
    resp = await client.get("/log/entries/" + "9" * 10_000)
    assert 400 <= resp.status < 500


async def test_query_strings_are_not_paths(client: Any) -> None:
    """A traversal or an injection in a parameter is just a malformed number."""
    for value in ("../../etc/passwd", "1;DROP TABLE log_entries", "1 OR 1=1"):
        await _assert_json_400(
            await client.get("/log/proof/inclusion", params={"index": value, "size": "1"})
        )
    assert (await client.get("/log/entries/0")).status == 200


# -- failures inside the service ------------------------------------------


class _LogWhoseReadsFail(CustodyLog):
    """The real log, except that reading its checkpoint fails with `error`."""

    error: BaseException = RuntimeError("boom: /secret/path password=hunter2")

    def checkpoint(self) -> SignedCheckpoint:
        raise self.error


@pytest.fixture
def failing_log(settings: Settings) -> Iterator[_LogWhoseReadsFail]:
    settings.data_dir.mkdir(parents=True)
    db = Database.connect(settings.database_url)
    signer: note.Signer = load_or_create_log_signer(settings.log_key_file)
    log = _LogWhoseReadsFail.open(db, signer)
    assert isinstance(log, _LogWhoseReadsFail)
    yield log
    db.close()


async def test_unexpected_error_is_a_plain_500_without_details(
    aiohttp_client: Any, settings: Settings, failing_log: _LogWhoseReadsFail
) -> None:
    client = await aiohttp_client(create_app(settings, log=failing_log))
    resp = await client.get("/log/checkpoint")
    assert resp.status == 500
    text = await resp.text()
    assert await resp.json() == {"error": "internal", "detail": "internal error"}
    assert "boom" not in text
    assert "Traceback" not in text
    assert "hunter2" not in text
    # The rest of the API still answers.
    assert (await client.get("/log/entries/0")).status == 200


async def test_evidence_error_keeps_its_status_and_code(
    aiohttp_client: Any, settings: Settings, failing_log: _LogWhoseReadsFail
) -> None:
    failing_log.error = StorageUnavailable("database unavailable: connection refused")
    client = await aiohttp_client(create_app(settings, log=failing_log))
    resp = await client.get("/log/checkpoint")
    assert resp.status == 503
    assert await resp.json() == {
        "error": "storage_unavailable",
        "detail": "database unavailable: connection refused",
    }

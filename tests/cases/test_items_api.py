"""Cases and items for people: what the listings and an item's metadata say."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from accesshelpers import Shared, upload
from media import png_image

from evidence.chain import manifest as mf
from evidence.chain.note import parse_vkey

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop of the `shared` app

ITEM_FIELDS = {
    "id",
    "case",
    "device",
    "seq",
    "kind",
    "media_type",
    "sha256",
    "size",
    "captured_at",
    "ingested_at",
    "ingested_entry",
    "last_entry",
    "chain",
}


async def _get(shared: Shared, path: str, caller: str = "reviewer") -> Any:
    response = await shared.client.get(path, headers=shared.world.auth(caller))
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "private, no-store"
    return await response.json()


@in_module_loop
async def test_an_items_metadata_lets_anyone_check_the_device_signature(shared: Shared) -> None:
    world = shared.world
    item = await _get(shared, f"/api/v1/items/{world.item.item}")
    assert set(item) == ITEM_FIELDS | {"manifest", "signature", "device_key"}
    manifest_bytes = item["manifest"].encode("utf-8")
    assert mf.item_id(manifest_bytes) == world.item.item == item["id"]
    mf.verify_manifest_signature(
        manifest_bytes, base64.b64decode(item["signature"]), parse_vkey(item["device_key"])
    )
    manifest = mf.parse_manifest(manifest_bytes)
    assert (item["case"], item["device"], item["seq"]) == (
        world.assigned.case,
        world.assigned.device,
        manifest.seq,
    )
    assert (item["size"], item["sha256"]) == (manifest.size, manifest.sha256)
    assert (item["kind"], item["media_type"], item["chain"]) == ("footage", "video/mp4", [])


@in_module_loop
async def test_a_case_lists_its_items_with_the_device_chain_findings(shared: Shared) -> None:
    world = shared.world
    kit = world.assigned
    photo = png_image(2, 2)
    kit.seq += 1  # this device's next manifest goes missing: a gap
    late = await upload(shared.client, kit, photo, kind="photo", media_type="image/png")

    listing = await _get(shared, f"/api/v1/cases/{kit.case}/items", "supervisor")
    assert listing["case"] == {"id": kit.case, "reference": "CASE/camera-a"}
    found = listing["items"]
    assert [i["id"] for i in found] == [world.item.item, late.item]  # in the log's order
    assert all(set(i) == ITEM_FIELDS for i in found)
    assert found[0]["ingested_entry"] < found[1]["ingested_entry"]
    assert found[1]["chain"] == [f"gap: seq {kit.seq - 1} of this device has not arrived"]
    detail = await _get(shared, f"/api/v1/items/{late.item}", "worker")
    assert detail["chain"] == found[1]["chain"]

"""End to end against a real `evidence serve`: the device client, a third-party tus client, and a
server killed with SIGKILL in the middle of an upload."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

from media import mp4_video
from serverproc import RunningServer, cli, cli_json, running
from tusclient import client as tus_client

from evidence.chain import manifest as mf
from evidence.chain import note
from evidence.chain.receipt import verify_receipt

MIB = 1 << 20


def request(
    server: RunningServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def get_json(server: RunningServer, path: str, headers: dict[str, str] | None = None) -> Any:
    response, body = request(server, "GET", path, headers)
    assert response.status == 200, body
    return json.loads(body)


def enrol(server: RunningServer, tmp_path: Path, name: str) -> tuple[note.Signer, str, str, str]:
    """A device key, enrolled with the CLI while the server runs; its id, token and a case."""
    signer = note.new_signer(name, hashlib.sha256(name.encode()).digest())
    case = cli_json(server, "cases", "add", f"REF {name}")["case"]
    created = cli_json(server, "devices", "enroll", "--vkey", signer.verifier.vkey, "--name", name)
    give_to_a_worker(server, created["device"], case, f"worker with {name}")
    return signer, created["device"], created["token"], case


def give_to_a_worker(server: RunningServer, device: str, case: str, name: str) -> str:
    """A new worker, assigned to `case`, carrying `device` (all with the admin CLI)."""
    worker = cli_json(server, "users", "add", name, "--role", "worker")["user"]
    cli_json(server, "cases", "assign", case, worker)
    cli_json(server, "devices", "assign", device, worker)
    return str(worker)


def sign(
    signer: note.Signer, device: str, case: str, content: bytes, **fields: Any
) -> tuple[bytes, bytes]:
    manifest = mf.manifest_bytes(
        mf.CaptureManifest(
            device=device,
            seq=1,
            prev=None,
            case=case,
            kind=fields.get("kind", "document"),
            sha256=hashlib.sha256(content).hexdigest(),
            size=len(content),
            media_type=fields.get("media_type", "text/plain"),
            captured_at="2026-11-24T09:30:00Z",
            ended_at=None,
            geo=None,
        )
    )
    return manifest, mf.sign_manifest(manifest, signer)


def vkey_of(server: RunningServer) -> str:
    return request(server, "GET", "/log/vkey")[1].decode().strip()


def test_the_device_client_from_init_to_verified_receipts(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        device_dir = tmp_path / "device"
        init = cli_json(
            server, "device", "init", "--dir", str(device_dir), "--name", "camera-9.example"
        )
        assert init["device"] == mf.device_id(init["device_vkey"])
        case = cli_json(server, "cases", "add", "LA/2026/123")["case"]
        enrolled = cli_json(
            server, "devices", "enroll", "--vkey", init["device_vkey"], "--name", "Camera 9"
        )
        assert enrolled["device"] == init["device"]
        give_to_a_worker(server, enrolled["device"], case, "Sam Worker")
        cli(server, "device", "token", "--dir", str(device_dir), stdin=enrolled["token"] + "\n")
        footage = tmp_path / "visit.mp4"
        footage.write_bytes(mp4_video(frames=24))
        uploaded = []
        for _ in range(2):
            uploaded.append(
                cli_json(
                    server,
                    "device",
                    "upload",
                    str(footage),
                    "--server",
                    server.url,
                    "--case",
                    case,
                    "--kind",
                    "footage",
                    "--dir",
                    str(device_dir),
                )
            )
        assert uploaded[0]["item"] != uploaded[1]["item"]  # two manifests: seq 1 and seq 2
        receipt = json.loads(Path(uploaded[1]["receipt"]).read_text())
        verified = verify_receipt(receipt, vkey_of(server))
        assert verified.entry.seq == 2
        assert verified.entry.sha256 == hashlib.sha256(footage.read_bytes()).hexdigest()
        checked = cli(
            server, "device", "receipts", "verify", "--server", server.url, "--dir", str(device_dir)
        )
        assert "2 of 2 receipts verified" in checked.stdout
        state = json.loads((device_dir / "device.json").read_text())
        assert (state["seq"], state["prev"]) == (2, uploaded[1]["item"])
        assert list((device_dir / "pending").glob("*.json")) == []
        assert "ok:" in cli(server, "fsck").stdout  # while the server runs


def test_any_tus_client_works_tuspy(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        signer, device, token, case = enrol(server, tmp_path, "tuspy-phone.example")
        content = b"Visit notes: child seen, seen alone, room clean.\n" * 40_000  # ~2 MiB
        path = tmp_path / "notes.txt"
        path.write_bytes(content)
        manifest, signature = sign(signer, device, case, content)
        tus = tus_client.TusClient(
            server.url + "/api/v1/uploads", headers={"Authorization": f"Bearer {token}"}
        )
        with path.open("rb") as stream:  # tuspy leaves a file it opens itself unclosed
            uploader = tus.uploader(
                file_stream=stream,
                chunk_size=700_000,  # not a multiple of anything the server uses
                metadata={
                    "manifest": manifest.decode("utf-8"),
                    "signature": base64.b64encode(signature).decode("ascii"),
                },
            )
            uploader.upload()
        location = uploader.url.removeprefix(server.url)
        receipt = get_json(server, location + "/receipt", {"Authorization": f"Bearer {token}"})
        assert verify_receipt(receipt, vkey_of(server)).item == mf.item_id(manifest)


def test_an_upload_survives_a_server_killed_mid_request(tmp_path: Path) -> None:
    content = bytes(range(32, 127)) * (24 * MIB // 95)  # ASCII, ~24 MiB
    with running(tmp_path) as first:
        signer, device, token, case = enrol(first, tmp_path, "camera-kill.example")
        manifest, signature = sign(signer, device, case, content)
        auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
        metadata = ",".join(
            f"{k} {base64.b64encode(v).decode()}"
            for k, v in (("manifest", manifest), ("signature", base64.b64encode(signature)))
        )
        created, _ = request(
            first,
            "POST",
            "/api/v1/uploads",
            {**auth, "Upload-Length": str(len(content)), "Upload-Metadata": metadata},
        )
        assert created.status == 201
        location = created.getheader("Location")
        assert location is not None
        patch = {**auth, "Content-Type": "application/offset+octet-stream"}
        head, _ = request(
            first, "PATCH", location, {**patch, "Upload-Offset": "0"}, content[: 10 * MIB]
        )
        assert head.getheader("Upload-Offset") == str(10 * MIB)
        # Start sending the rest, and kill the server (SIGKILL) part-way through the body.
        host, port = first.url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        rest = content[10 * MIB :]
        head_lines = [
            f"PATCH {location} HTTP/1.1",
            f"Host: {host}:{port}",
            f"Content-Length: {len(rest)}",
            f"Upload-Offset: {10 * MIB}",
            *(f"{k}: {v}" for k, v in patch.items()),
        ]
        sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode())
        sock.sendall(rest[: 9 * MIB])
        # Each part is recorded as soon as it is durable: wait (bounded) until the
        # server reports one of this request's parts, then kill it mid-body.
        deadline = time.monotonic() + 60
        while True:
            head, _ = request(first, "HEAD", location, auth)
            durable = int(head.getheader("Upload-Offset") or "-1")
            if durable > 10 * MIB:
                break
            assert time.monotonic() < deadline, "no part of the second PATCH was ever recorded"
            time.sleep(0.05)
        first.proc.kill()
        first.proc.wait(timeout=30)
        sock.close()

    with running(tmp_path, name="restarted", port=int(port)) as second:
        head, _ = request(second, "HEAD", location, auth)
        assert head.status == 200
        offset = int(head.getheader("Upload-Offset") or "-1")
        assert durable <= offset <= 19 * MIB  # what was durable survived; nothing more counts
        done, _ = request(
            second, "PATCH", location, {**patch, "Upload-Offset": str(offset)}, content[offset:]
        )
        assert done.status == 204, done.status
        receipt = get_json(second, location + "/receipt", auth)
        verified = verify_receipt(receipt, vkey_of(second))
        assert verified.entry.sha256 == hashlib.sha256(content).hexdigest()
        assert "ok:" in cli(second, "fsck").stdout


def test_refused_uploads_stay_pending_until_retried_or_discarded(tmp_path: Path) -> None:
    """A device whose worker is not yet assigned is refused twice; the admin fixes that; the
    next item names both missing seqs; one is retried, the other discarded (a gap for good)."""
    with running(tmp_path) as server:
        device_dir = str(tmp_path / "device")
        init = cli_json(server, "device", "init", "--dir", device_dir, "--name", "cam-p.example")
        case = cli_json(server, "cases", "add", "LA/2026/pending")["case"]
        enrolled = cli_json(
            server, "devices", "enroll", "--vkey", init["device_vkey"], "--name", "Cam P"
        )
        cli(server, "device", "token", "--dir", device_dir, stdin=enrolled["token"] + "\n")
        files = []
        for n in range(3):
            path = tmp_path / f"note-{n}.txt"
            path.write_text(f"visit note {n}\n")
            files.append(path)

        def upload(path: Path, check: bool = True) -> Any:
            return cli(
                server,
                *("device", "upload", str(path), "--server", server.url, "--case", case),
                *("--kind", "document", "--dir", device_dir),
                check=check,
            )

        for path in files[:2]:  # no worker carries the device yet: refused
            refused = upload(path, check=False)
            assert refused.returncode == 1
            assert "refused" in refused.stderr
        pending = [
            json.loads(line)
            for line in cli(
                server, "device", "pending", "list", "--dir", device_dir
            ).stdout.splitlines()
        ]
        assert [(p["seq"], p["file"]) for p in pending] == [(1, str(files[0])), (2, str(files[1]))]
        assert all("HTTP 403" in p["error"] for p in pending)

        give_to_a_worker(server, enrolled["device"], case, "Pat Worker")
        third = json.loads(upload(files[2]).stdout.splitlines()[-1])
        supervisor = cli_json(server, "users", "add", "Sue Pervisor", "--role", "supervisor")
        cli(server, "cases", "assign", case, supervisor["user"])
        token = cli_json(server, "tokens", "create", supervisor["user"])["token"]

        def chain() -> dict[str, list[str]]:
            listing = get_json(
                server, f"/api/v1/cases/{case}/items", {"Authorization": f"Bearer {token}"}
            )
            return {item["id"]: item["chain"] for item in listing["items"]}

        assert chain() == {third["item"]: ["gap: seq 1-2 of this device have not arrived"]}

        # Retry seq 1 by a prefix of its id; discarding seq 2 needs --yes.
        retried = json.loads(
            cli(
                server,
                *("device", "pending", "retry", pending[0]["item"][:12]),
                *("--server", server.url, "--dir", device_dir),
            ).stdout.splitlines()[-1]
        )
        assert retried["item"] == pending[0]["item"]
        assert Path(retried["receipt"]).exists()
        unsure = cli(
            server, "device", "pending", "discard", "--all", "--dir", device_dir, check=False
        )
        assert unsure.returncode == 1
        assert "seq 2 would stay a gap" in unsure.stderr
        left = cli(server, "device", "pending", "list", "--dir", device_dir).stdout.splitlines()
        assert [json.loads(line)["seq"] for line in left] == [2]
        cli(server, "device", "pending", "discard", "--all", "--yes", "--dir", device_dir)
        assert cli(server, "device", "pending", "list", "--dir", device_dir).stdout == ""
        assert (tmp_path / "device" / "discarded" / f"{pending[1]['item']}.json").exists()
        retry_none = cli(
            server,
            "device",
            "pending",
            "retry",
            "--all",
            "--server",
            server.url,
            "--dir",
            device_dir,
        )
        assert retry_none.stdout == ""

        assert chain() == {
            third["item"]: ["gap: seq 1-2 of this device have not arrived"],
            retried["item"]: ["late: arrived after seq 3 of this device"],
        }
        fourth = json.loads(upload(files[0]).stdout.splitlines()[-1])  # seq 4: 2 still missing
        assert chain()[fourth["item"]] == ["gap: seq 2 of this device has not arrived"]
        shown = cli_json(server, "device", "show", "--dir", device_dir)
        assert (shown["device"], shown["seq"], shown["pending"]) == (init["device"], 4, 0)

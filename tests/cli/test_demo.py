"""`evidence demo` against a real `evidence serve`: what a newcomer runs right after `make run`."""

from __future__ import annotations

import html
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import av
from serverproc import RunningServer, cli, running

from evidence.chain.entries import ItemIngested, parse_entry

PASSWORD = re.compile(r"^  password:  (\S+)$", re.MULTILINE)
USER_NAME = re.compile(r"^  user name: (\S+)$", re.MULTILINE)
ENTRY = re.compile(r"^  (\S+) +(\S+) +log entry (\d+), receipt verified$", re.MULTILINE)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A person at a browser: cookies kept, forms posted."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.server.url + path, timeout=60) as response:
            return str(response.read().decode("utf-8"))

    def log_in(self, name: str, password: str) -> str:
        found = CSRF.search(self.get("/login"))
        assert found is not None
        form = {"csrf_token": html.unescape(found.group(1)), "name": name, "password": password}
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.server.url + "/login", data=data, timeout=60) as response:
            return str(response.read().decode("utf-8"))  # the redirect to / is followed

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))


def demo(server: RunningServer, directory: Path) -> str:
    done = cli(server, "demo", "--server", server.url, "--dir", str(directory))
    return done.stdout


def test_the_demo_fills_a_running_service_and_its_reviewer_can_log_in(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        out = demo(server, tmp_path / "demo")
        assert "demo case DEMO-1 " in out
        assert f"Log in at {server.url}/login" in out
        uploaded = ENTRY.findall(out)
        assert [kind for kind, _, _ in uploaded] == ["footage", "photo", "visit-record"]

        # The items are in the log, and the device's receipts verify against it.
        for _, _, index in uploaded:
            with urllib.request.urlopen(f"{server.url}/log/entries/{index}") as resp:  # noqa: S310
                entry = parse_entry(resp.read())
            assert isinstance(entry, ItemIngested)
        device_dir = tmp_path / "demo" / "camera-1"
        checked = cli(
            server, "device", "receipts", "verify", "--server", server.url, "--dir", str(device_dir)
        )
        assert "3 of 3 receipts verified" in checked.stdout

        # The footage has pictures and sound, in codecs a browser plays.
        with av.open(str(device_dir / "captures" / "visit.mp4")) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert container.streams.audio[0].codec_context.name == "aac"

        # The reviewer logs in with the printed password and sees the case's items.
        name, password = USER_NAME.search(out), PASSWORD.search(out)
        assert name is not None
        assert password is not None
        browser = Browser(server)
        assert name.group(1) in browser.log_in(name.group(1), password.group(1))
        cases = browser.get_json("/api/v1/cases")["cases"]
        assert [c["reference"] for c in cases] == ["DEMO-1"]
        items = browser.get_json(f"/api/v1/cases/{cases[0]['id']}/items")["items"]
        assert sorted(i["kind"] for i in items) == ["footage", "photo", "visit-record"]
        assert all(i["chain"] == [] for i in items)  # seq 1, 2, 3 in order

        # Again: a second demo case with its own people, not a clash with the first.
        again = demo(server, tmp_path / "demo")
        assert "demo case DEMO-2 " in again
        second = PASSWORD.search(again)
        assert second is not None
        assert second.group(1) != password.group(1)
        assert (
            "3 of 3 receipts verified"
            in cli(
                server,
                "device",
                "receipts",
                "verify",
                "--server",
                server.url,
                "--dir",
                str(tmp_path / "demo" / "camera-2"),
            ).stdout
        )


def test_the_demo_refuses_settings_that_are_not_the_servers(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        other = RunningServer(
            server.proc,
            server.url,
            server.log_path,
            tmp_path / "other",
            {**server.env, "EVIDENCE_DATA_DIR": str(tmp_path / "other")},
        )
        refused = cli(
            other, "demo", "--server", server.url, "--dir", str(tmp_path / "demo"), check=False
        )
        assert refused.returncode == 2  # bad settings
        assert "no log key file at " in refused.stderr
        assert "run the demo with the settings the server was started with" in refused.stderr
        assert not (tmp_path / "other").exists()  # nothing was created
        assert not (tmp_path / "demo").exists()

        # Settings of another log entirely (its data dir made by another server).
        with running(tmp_path, name="other", EVIDENCE_DATA_DIR=str(tmp_path / "other")):
            pass
        refused = cli(
            other, "demo", "--server", server.url, "--dir", str(tmp_path / "demo"), check=False
        )
        assert refused.returncode == 2
        assert f"the server at {server.url} keeps another log" in refused.stderr
        assert not (tmp_path / "demo").exists()


def test_the_demo_says_how_to_start_a_server_when_none_answers(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        url = server.url
    missing = cli(server, "demo", "--server", url, "--dir", str(tmp_path / "demo"), check=False)
    assert missing.returncode == 3
    assert f"no evidence server answers at {url}" in missing.stderr
    assert "make run" in missing.stderr

"""`evidence log verify` against a server that answers with an error: the exit codes.

A real HTTP server on the loopback answers every request with the status
under test. 5xx means the log could not be reached or read right now (exit 3,
"unreachable": a monitor retries); any other error is a failed check (exit 1).
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverproc import command, server_env

CLI_TIMEOUT_SECONDS = 60


class _Answers(http.server.BaseHTTPRequestHandler):
    statuses: list[int]  # the last one is the answer

    def do_GET(self) -> None:
        body = b'{"error": "internal", "detail": "on fire"}'
        self.send_response(self.statuses[-1])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[str, list[int]]]:
    """A server answering each GET with the status last put in the list; its URL and the list."""
    statuses = [500]

    class Handler(_Answers):
        pass

    Handler.statuses = statuses

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _verify(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("log", "verify", "--server", url, "--state", str(tmp_path / "state.json")),
        env=server_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize(("status", "exit_code"), [(500, 3), (503, 3), (404, 1), (403, 1)])
def test_log_verify_exits_3_on_a_server_error_and_1_on_other_errors(
    answering: tuple[str, list[int]], tmp_path: Path, status: int, exit_code: int
) -> None:
    url, statuses = answering
    statuses.append(status)
    result = _verify(url, tmp_path)
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state.json").exists()  # nothing pinned from a failed read

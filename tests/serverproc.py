"""A real `evidence serve` in a subprocess, for the tests that need one (importable from tests/)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EVIDENCE = Path(sys.executable).parent / "evidence"
STARTUP_ATTEMPTS = 600  # polls 50 ms apart: a generous bound for a slow CI machine


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command(*args: str) -> list[str]:
    """The `evidence` command line with `args`."""
    if EVIDENCE.exists():
        return [str(EVIDENCE), *args]
    return [sys.executable, "-m", "evidence.cli", *args]


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without EVIDENCE_*, naming a data dir under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(
        EVIDENCE_DATA_DIR=str(tmp_path / "data"),
        EVIDENCE_LOG_FORMAT="json",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    env.update(extra)
    return env


def cli(
    server: RunningServer, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`evidence ARGS` with the server's settings; it must succeed unless not `check`."""
    done = subprocess.run(
        command(*args),
        env=server.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done


def cli_json(server: RunningServer, *args: str) -> dict[str, Any]:
    """The JSON that `evidence ARGS` prints last."""
    lines = cli(server, *args).stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    data_dir: Path
    env: dict[str, str]

    def events(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@contextlib.contextmanager
def running(
    tmp_path: Path, name: str = "server", port: int | None = None, **env: str
) -> Iterator[RunningServer]:
    """`evidence serve` on a free port until the block ends (then killed if still running)."""
    port = port or free_port()
    log_path = tmp_path / f"{name}.log"
    environ = server_env(tmp_path, **env)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            command("serve", "--port", str(port)),
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = RunningServer(
        proc, f"http://127.0.0.1:{port}", log_path, Path(environ["EVIDENCE_DATA_DIR"]), environ
    )
    try:
        for _ in range(STARTUP_ATTEMPTS):
            if proc.poll() is not None:
                pytest.fail(f"evidence serve exited {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(server.url + "/log/checkpoint", timeout=5) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        else:
            pytest.fail(f"evidence serve did not answer:\n{log_path.read_text()}")
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Build and run the independent Go verifier (`verify.go` next to this file).

The verifier uses only Go's golang.org/x/mod/sumdb/note and sumdb/tlog and the
standard library, so a checkpoint and proofs it accepts were checked by an
implementation that shares no code with `evidence.chain`.

Use from a test under tests/interop (pytest puts this directory on sys.path)::

    from gotools import require_go_verifier, run_go_verifier, verifier_doc

or from anywhere else::

    sys.path.insert(0, str(Path(__file__).parents[1] / "interop"))  # from tests/<dir>/

`run_go_verifier(doc)` compiles the verifier once per process (GOPATH mode, no
network, build cache in a temporary directory removed at exit) and runs it on
`doc`. Call `require_go_verifier()` first in a test: it skips the test when Go
or the x/mod sources are missing, and fails it instead when
EVIDENCE_TEST_REQUIRE_INTEROP=1 (so CI cannot pass by skipping). The fixture
`go_verifier` in tests/interop/conftest.py does both.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

GO_SOURCE = Path(__file__).resolve().with_name("verify.go")
REQUIRE_ENV = "EVIDENCE_TEST_REQUIRE_INTEROP"
GOPATH_ENV = "EVIDENCE_GOPATH"  # where golang.org/x/mod lives; Debian's golang-golang-x-mod-dev
DEFAULT_GOPATH = "/usr/share/gocode"
X_MOD_PACKAGES = ("golang.org/x/mod/sumdb/note", "golang.org/x/mod/sumdb/tlog")

# The type of the `go_verifier` fixture (tests/interop/conftest.py): `run_go_verifier`.
GoVerifier = Callable[[dict[str, Any]], "subprocess.CompletedProcess[str]"]

_lock = threading.Lock()
_binary: Path | None = None


class GoVerifierUnavailable(RuntimeError):
    """Go or the x/mod sources are not installed."""


class GoVerifierBuildError(RuntimeError):
    """Go is installed but verify.go did not compile: a real failure, never a skip."""


def gopath() -> Path:
    return Path(os.environ.get(GOPATH_ENV) or DEFAULT_GOPATH)


def unavailable_reason() -> str | None:
    """Why the Go verifier cannot be built here, or None if it can."""
    if shutil.which("go") is None:
        return "the `go` command is not on PATH (apt package golang-go)"
    for package in X_MOD_PACKAGES:
        if not (gopath() / "src" / package).is_dir():
            return (
                f"{package} is not under GOPATH {gopath()} "
                f"(apt package golang-golang-x-mod-dev, or set {GOPATH_ENV})"
            )
    return None


def require_go_verifier() -> None:
    """Skip the calling test if the Go verifier cannot be built; fail if it is required."""
    reason = unavailable_reason()
    if reason is None:
        return
    message = f"independent Go verifier unavailable: {reason}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 requires it")
    pytest.skip(message)


def go_verifier_binary() -> Path:
    """The compiled verifier, built on first use and cached for the process."""
    global _binary
    with _lock:
        if _binary is not None and _binary.exists():
            return _binary
        reason = unavailable_reason()
        if reason is not None:
            raise GoVerifierUnavailable(reason)
        workdir = Path(tempfile.mkdtemp(prefix="evidence-go-verifier-"))
        atexit.register(shutil.rmtree, workdir, True)
        binary = workdir / "verify"
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": str(gopath()),
            "GOCACHE": str(workdir / "cache"),
            "GOFLAGS": "",
            "GOENV": "off",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
        }
        go = shutil.which("go") or "go"
        proc = subprocess.run(
            [go, "build", "-o", str(binary), str(GO_SOURCE)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0 or not binary.exists():
            raise GoVerifierBuildError(
                f"go build of {GO_SOURCE} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        _binary = binary
        return binary


def run_go_verifier(doc: dict[str, Any], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the Go verifier on `doc`; exit status 0 = verified, 1 = rejected, 2 = bad input.

    stdout is one JSON object: ``{"ok": true, "origin", "size", "root",
    "inclusions", "consistencies"}`` or ``{"ok": false, "error": ...}``.
    """
    return subprocess.run(
        [str(go_verifier_binary())],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def go_result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The verifier's JSON answer (asserting that it printed exactly one)."""
    result: dict[str, Any] = json.loads(proc.stdout)
    assert isinstance(result, dict), proc.stdout
    assert result["ok"] is (proc.returncode == 0), (proc.returncode, proc.stdout, proc.stderr)
    return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier_doc(
    vkey: str,
    checkpoint: str,
    inclusions: Iterable[tuple[int, bytes, Sequence[bytes]]] = (),
    consistencies: Iterable[tuple[int, bytes, Sequence[bytes]]] = (),
) -> dict[str, Any]:
    """The verifier's input from raw values.

    `inclusions`: (index, entry bytes, proof hashes); `consistencies`:
    (old size, old root, proof hashes) towards the checkpoint's tree.
    """
    return {
        "vkey": vkey,
        "checkpoint": checkpoint,
        "inclusions": [
            {"index": index, "entry": _b64(entry), "proof": [_b64(h) for h in proof]}
            for index, entry, proof in inclusions
        ],
        "consistencies": [
            {"old_size": size, "old_root": _b64(root), "proof": [_b64(h) for h in proof]}
            for size, root, proof in consistencies
        ],
    }

"""Fixtures for the interop tests: the independent Go verifier (see gotools.py)."""

from __future__ import annotations

import pytest
from gotools import GoVerifier, go_verifier_binary, require_go_verifier, run_go_verifier

# Re-exported for tests that import it from here; `from gotools import GoVerifier`
# is the robust spelling (several conftest.py files share the module name).
__all__ = ["GoVerifier", "go_verifier"]


@pytest.fixture(scope="session")
def go_verifier() -> GoVerifier:
    """`run_go_verifier`, once Go is known to be there (skip, or fail if required)."""
    require_go_verifier()
    go_verifier_binary()  # build once, up front: a build failure fails the tests
    return run_go_verifier

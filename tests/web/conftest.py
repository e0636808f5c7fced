"""Fixtures: the real app, people of every role, cases and items (tests/accessfixtures.py)."""

from accessfixtures import client, settings, shared, world

__all__ = ["client", "settings", "shared", "world"]

"""Fixtures: the real app factory on a real database (tests/appfixtures.py)."""

from appfixtures import backend_settings, client, restore_logging, settings

__all__ = ["backend_settings", "client", "restore_logging", "settings"]

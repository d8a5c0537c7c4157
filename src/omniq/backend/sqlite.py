"""Kept so that ``from omniq.backend.sqlite import SQLiteBackend`` works: the bundle lives beside
its backend, in :mod:`omniq.storage.sqlite.backend`."""

from omniq.storage.sqlite.backend import AsyncSQLiteBackend, SQLiteBackend

__all__ = ["AsyncSQLiteBackend", "SQLiteBackend"]

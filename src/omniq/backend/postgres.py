"""Kept so that ``from omniq.backend.postgres import PostgresBackend`` works: the bundle lives beside
its backend, in :mod:`omniq.storage.postgres.backend`."""

from omniq.storage.postgres.backend import AsyncPostgresBackend, PostgresBackend

__all__ = ["AsyncPostgresBackend", "PostgresBackend"]

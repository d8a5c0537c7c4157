"""The SQL of the PostgreSQL backend, in ``sql/`` (see :mod:`omniq.storage._sql`)."""

from __future__ import annotations

from omniq.storage._sql import Migration, SqlFiles, parse_queries

FILES = SqlFiles(__package__ or "omniq.storage.postgres", "PostgreSQL")


def queries() -> dict[str, str]:
    return FILES.queries


def schema_sql() -> str:
    return FILES.schema


def migrations() -> tuple[Migration, ...]:
    return FILES.migrations


__all__ = ["FILES", "Migration", "migrations", "parse_queries", "queries", "schema_sql"]

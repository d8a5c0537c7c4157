"""The SQL of the PostgreSQL backend, kept in files (procrastinate-style) and loaded once.

``sql/queries.sql`` holds every statement under a ``-- name: <name>`` header, ``sql/schema.sql``
the current schema, and ``sql/migrations/NNNN_<what>.sql`` the versioned steps that lead to it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_HEADER = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def _read(*parts: str) -> str:
    return resources.files(__package__).joinpath("sql", *parts).read_text(encoding="utf-8")


def parse_queries(text: str) -> dict[str, str]:
    """Splits a file on its ``-- name:`` headers; the text before the first header is a preamble."""
    queries: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in queries.sql")
        body = text[match.end() : following.start() if following else len(text)]
        queries[name] = body.strip().rstrip(";")
    return queries


@functools.cache
def queries() -> dict[str, str]:
    return parse_queries(_read("queries.sql"))


@functools.cache
def schema_sql() -> str:
    return _read("schema.sql")


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, in version order; versions must run 1, 2, 3... without gaps."""
    folder = resources.files(__package__).joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(
                Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    expected = list(range(1, len(found) + 1))
    if [m.version for m in found] != expected:
        raise RuntimeError(
            f"PostgreSQL migrations must be numbered 1..n without gaps, got "
            f"{[m.version for m in found]}"
        )
    return tuple(found)


__all__ = ["Migration", "migrations", "parse_queries", "queries", "schema_sql"]

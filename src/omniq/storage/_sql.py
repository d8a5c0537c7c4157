"""SQL kept in files (procrastinate-style), one loader for every SQL backend.

A backend's ``sql/`` folder holds ``queries.sql`` (every statement under a ``-- name: <name>``
header), ``schema.sql`` (the schema the migrations produce, for reading and for the test that
checks they agree) and ``migrations/NNNN_<what>.sql``, the versioned steps that lead to it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.abc import Traversable
from typing import NamedTuple

_HEADER = re.compile(r"^-- name: (?P<name>[a-z0-9_]+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def parse_queries(text: str) -> dict[str, str]:
    """Splits a file on its ``-- name:`` headers; the text before the first header is a preamble."""
    queries: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        name = match["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in queries.sql")
        body = text[match.end() : following.start() if following else len(text)].strip()
        # comment lines at the end introduce the next statement, not this one
        lines = body.splitlines()
        while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
            lines.pop()
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


class SqlFiles:
    """The ``sql/`` folder of a backend package, each file read once."""

    def __init__(self, package: str, label: str) -> None:
        self.package = package
        self.label = label  # names the backend in errors

    def _folder(self) -> Traversable:
        return resources.files(self.package).joinpath("sql")

    @functools.cached_property
    def queries(self) -> dict[str, str]:
        return parse_queries(self._folder().joinpath("queries.sql").read_text(encoding="utf-8"))

    @functools.cached_property
    def schema(self) -> str:
        return self._folder().joinpath("schema.sql").read_text(encoding="utf-8")

    @functools.cached_property
    def migrations(self) -> tuple[Migration, ...]:
        """Every migration, in version order; versions must run 1, 2, 3... without gaps."""
        found = []
        for entry in self._folder().joinpath("migrations").iterdir():
            match = _MIGRATION.match(entry.name)
            if match:
                text = entry.read_text(encoding="utf-8")
                found.append(Migration(int(match["version"]), match["name"], text))
        found.sort(key=lambda m: m.version)
        versions = [m.version for m in found]
        if versions != list(range(1, len(found) + 1)):
            raise RuntimeError(
                f"{self.label} migrations must be numbered 1..n without gaps, got {versions}"
            )
        return tuple(found)


__all__ = ["Migration", "SqlFiles", "parse_queries"]

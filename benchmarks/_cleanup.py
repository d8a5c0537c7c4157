"""Deleting what a benchmark stored: its project's records, on any SQL or Redis store."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit


def pg_parts(url: str) -> tuple[str, str]:
    """(the URL without its query, the schema OmniQ's tables are in)."""
    base, _, query = url.partition("?")
    return base, parse_qs(query).get("schema", ["omniq"])[0]


async def forget_project(url: str, project: str) -> None:
    """Deletes every record of ``project`` (the API purges no SUCCESS task: they are history)
    on SQLite, PostgreSQL (then VACUUMs: autovacuum may be off) and Redis; elsewhere nothing."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(urlsplit(url).path.removeprefix("/"), isolation_level=None)
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                if table.startswith("omniq_") and table != "omniq_schema_version":
                    conn.execute(f"DELETE FROM {table} WHERE project = ?", (project,))
        finally:
            conn.close()
    elif url.startswith("redis"):
        import redis.asyncio as redis

        client = redis.Redis.from_url(url)
        try:
            keys = []
            async for key in client.scan_iter(match=f"*{{{project}}}*", count=10_000):
                keys.append(key)
                if len(keys) == 5000:
                    await client.unlink(*keys)
                    keys.clear()
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()
    elif url.startswith("postgres"):
        import asyncpg  # type: ignore[import-untyped]

        base, schema = pg_parts(url)
        conn = await asyncpg.connect(base)
        try:
            for table in ("tasks", "results", "events", "schedules", "workers", "task_counts"):
                await conn.execute(f'DELETE FROM "{schema}".{table} WHERE project = $1', project)
            await conn.execute(f'VACUUM ANALYZE "{schema}".tasks')
        finally:
            await conn.close()

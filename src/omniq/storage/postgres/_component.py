"""What every PostgreSQL component shares: its settings, its asyncpg pool, the schema check."""

from __future__ import annotations

import contextvars
from typing import Any

from omniq.exceptions import BackendUnavailable
from omniq.storage.base import Component
from omniq.storage.postgres._connection import (
    OUTAGE,
    PgSettings,
    close_pool,
    create_pool,
    migrate,
    transient,
)

#: (component id, listener epoch, notification count) taken just before a read that may come
#: back empty: the wait that follows compares it with what the listener heard since, so a
#: notification landing between the read and the wait is never lost. Kept per asyncio task.
SNAPSHOT: contextvars.ContextVar[tuple[int, int, int] | None] = contextvars.ContextVar(
    "omniq_postgres_snapshot", default=None
)


class PgComponent(Component):
    """Mixin base of the three PostgreSQL components (put first in the bases)."""

    backend_name = "postgres"
    is_local = False

    def __init__(self, **options: Any) -> None:
        self.pg = PgSettings.pop_from(options)
        super().__init__(**options)
        self._pool: Any = None

    def server_label(self) -> str:
        return f"PostgreSQL at {self.pg.describe()}"

    def _is_outage(self, exc: BaseException) -> bool:
        return transient(exc) or isinstance(exc, OSError | BackendUnavailable)

    @property
    def schema(self) -> str:
        return self.pg.schema

    @property
    def pool(self) -> Any:
        """The asyncpg pool (connected components only)."""
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is not connected; call connect() first")
        return self._pool

    def connection_options(self) -> dict[str, Any]:
        """Options that build a sibling component on the same database and schema."""
        return self.pg.as_options()

    def same_database(self, other: object) -> bool:
        return isinstance(other, PgComponent) and other.pg.identity() == self.pg.identity()

    async def _init_connection(self, conn: Any) -> None:
        """Runs once on every new pooled connection (after a server restart too): a component
        that needs per-session objects (the queue's COPY staging table) creates them here."""
        del conn

    async def _init_pooled(self, conn: Any) -> None:
        OUTAGE.over()
        await self._init_connection(conn)

    async def _connect(self) -> None:
        pool = await create_pool(self.pg, init=self._init_pooled)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, self.pg.schema)
        except BaseException:
            await close_pool(pool)
            raise
        self._pool = pool

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool)

    async def _health(self) -> dict[str, Any]:
        version = await self.pool.fetchval("SHOW server_version")
        return {
            "server_version": version,
            "schema": self.pg.schema,
            "pool_size": self.pool.get_size(),
            "pool_idle": self.pool.get_idle_size(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(project_name={self.project_name!r}, {self.pg.describe()})"


__all__ = ["SNAPSHOT", "PgComponent"]

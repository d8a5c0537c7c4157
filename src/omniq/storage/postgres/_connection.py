"""The driver seam of the PostgreSQL backend: connection settings, the asyncpg pool, schema
migrations under an advisory lock, and the LISTEN connection that turns NOTIFY into wake-ups.

Driver errors that mean "the server cannot be reached" are translated here into
:class:`~omniq.exceptions.BackendUnavailable`, naming the (redacted) server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from omniq._redact import redact_url
from omniq.config import get_logger
from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.storage._outages import OutageLog
from omniq.storage.postgres._sql import migrations, schema_sql

log = get_logger("storage.postgres")

DEFAULT_SCHEMA = "omniq"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMES = ("postgresql", "postgres")

#: Errors that mean the server is unreachable or refused us: surfaced as BackendUnavailable.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)

#: Errors of a server shutting down or restarting under an open connection (SQLSTATE 57P01,
#: 57P02), and asyncpg's of a pooled connection whose protocol was left mid-operation by that
#: ("cannot switch to state 12; another operation (2) is in progress", seen on a restart under
#: 300 waiters): the next connection may well succeed.
SHUTTING_DOWN = (
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
)


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the server is away for now (down, restarting, refusing connections,
    the connection cut), so the same read may succeed later; also when it comes wrapped in the
    BackendUnavailable of :func:`connect`. Not for a component that is closed or misused."""
    if isinstance(exc, BackendUnavailable) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, (*UNAVAILABLE, *SHUTTING_DOWN)) and not isinstance(
        exc, (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)
    )


class _Outage(OutageLog, logging.Filter):
    """One warning line per outage of PostgreSQL (see :class:`OutageLog`). While the server is
    away, asyncpg logs "Failed to restore the pool connection floor; retrying" with a traceback
    at every reconnection attempt of every pool (every second at first), and each LISTEN
    connection notices the loss too: dozens of lines and tracebacks per restart. asyncpg's
    records pass through :meth:`filter`, which turns the first into the outage's line and drops
    the rest. Per process: two PostgreSQL servers down at once share one line."""

    def __init__(self) -> None:
        OutageLog.__init__(self, log, "PostgreSQL")
        logging.Filter.__init__(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """asyncpg's own record: becomes the outage's line (or nothing)."""
        if not record.getMessage().startswith("Failed to restore the pool connection floor"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        self.begin(f"{type(error).__name__}: {error}" if error else "a pool cannot reconnect")
        return False


OUTAGE = _Outage()
logging.getLogger("asyncpg.pool").addFilter(OUTAGE)


#: Options every PostgreSQL component accepts besides its own (see ``PgSettings``).
CONNECTION_OPTIONS = frozenset(
    {
        "dsn",
        "url",
        "host",
        "port",
        "username",
        "user",
        "password",
        "database",
        "schema",
        "min_size",
        "max_size",
        "ssl",
        "statement_cache_size",
        "command_timeout",
        "connect_timeout",
        "application_name",
    }
)


def validate_schema(schema: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"PostgreSQL schema {schema!r} is not a plain lower-case identifier "
            "(letters, digits and '_', at most 63 characters, not starting with a digit)"
        )
    return schema


@dataclass(frozen=True)
class PgSettings:
    """Where and how to connect. A ``dsn`` (``postgresql://user:pw@host:5432/db?schema=x``) and
    explicit parameters combine; explicit ones win. ``database`` defaults to libpq's rule (the user
    name), ``schema`` to ``omniq``."""

    dsn: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    schema: str = DEFAULT_SCHEMA
    min_size: int = 1
    max_size: int = 10
    ssl: Any = None
    statement_cache_size: int = 100
    command_timeout: float | None = None
    connect_timeout: float = 10.0
    application_name: str = "omniq"

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> PgSettings:
        """Takes the connection options out of ``options`` (the rest belongs to the component)."""
        given = {k: options.pop(k) for k in list(options) if k in CONNECTION_OPTIONS}
        given = {k: v for k, v in given.items() if v is not None}
        dsn = given.pop("dsn", None)
        url = given.pop("url", None)
        if dsn is not None and url is not None and dsn != url:
            raise ConfigError("give either dsn or url for PostgreSQL, not both")
        dsn = dsn or url
        user = given.pop("username", None)
        alias = given.pop("user", None)
        if user is not None and alias is not None and user != alias:
            raise ConfigError(f"username={user!r} and user={alias!r} disagree")
        schema = given.pop("schema", None)
        if dsn is not None:
            dsn, url_schema = _split_dsn(dsn)
            schema = schema or url_schema
        settings = cls(
            dsn=dsn,
            user=user or alias,
            schema=validate_schema(schema or DEFAULT_SCHEMA),
            **given,
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.port is not None and not (0 < int(self.port) < 65536):
            raise ConfigError(f"PostgreSQL port {self.port!r} is not a TCP port")
        if self.min_size < 0 or self.max_size < 1 or self.min_size > self.max_size:
            raise ConfigError(
                f"PostgreSQL pool sizes need 0 <= min_size <= max_size and max_size >= 1, got "
                f"min_size={self.min_size!r}, max_size={self.max_size!r}"
            )

    def as_options(self) -> dict[str, Any]:
        """The same settings as component options (to build a sibling component)."""
        return {
            "dsn": self.dsn,
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "database": self.database,
            "schema": self.schema,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "ssl": self.ssl,
            "statement_cache_size": self.statement_cache_size,
            "command_timeout": self.command_timeout,
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
        }

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``create_pool``. Every connection's
        search_path is the schema, so the SQL files name tables without a schema."""
        kwargs: dict[str, Any] = {
            "dsn": self.dsn,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "ssl": self.ssl,
            "timeout": self.connect_timeout,
            "statement_cache_size": self.statement_cache_size,
            "command_timeout": self.command_timeout,
            "server_settings": {
                "search_path": self.schema,
                "application_name": self.application_name,
                # Batch statements take arrays whose size the planner cannot see in a generic
                # plan (it assumes 10 elements), and a generic plan for a 500-task completion
                # ran 10x slower than a custom one; planning costs far less than that.
                "plan_cache_mode": "force_custom_plan",
            },
        }
        return {k: v for k, v in kwargs.items() if v is not None}

    def identity(self) -> tuple[Any, ...]:
        """What makes two components share a database and schema (for one-transaction
        completions). Conservative: settings that merely look different count as different."""
        parts = urlsplit(self.dsn) if self.dsn else None
        host = self.host or (parts.hostname if parts else None) or "localhost"
        port = self.port or (parts.port if parts else None) or 5432
        user = self.user or (parts.username if parts else None)
        database = self.database or (parts.path.lstrip("/") if parts and parts.path else None)
        return (host, int(port), user, database or user, self.schema)

    def describe(self) -> str:
        host, port, user, database, schema = self.identity()
        where = redact_url(self.dsn) if self.dsn else f"{host}:{port}"
        return f"{where} (user {user!r}, database {database!r}, schema {schema!r})"


def _split_dsn(dsn: str) -> tuple[str, str | None]:
    """Checks the scheme and takes OmniQ's own ``schema`` query parameter out of a DSN (asyncpg
    would send unknown parameters to the server as settings)."""
    parts = urlsplit(dsn)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(
            f"PostgreSQL URL {redact_url(dsn)!r} must start with postgresql:// or postgres://"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def channel_name(kind: str, schema: str, project: str) -> str:
    """A NOTIFY channel per schema and project: a short, always-valid identifier."""
    digest = hashlib.sha1(f"{schema}\0{project}".encode()).hexdigest()[:20]
    return f"omniq_{kind}_{digest}"


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release, in place of asyncpg's default ``Connection.reset()``.

    The default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` every time a
    connection goes back to the pool: a second round trip after every one-statement call, which
    made a sequential enqueue cost two. OmniQ leaves no session state on pooled connections (no
    session advisory locks, cursors, LISTEN or SET; migrations use transaction-scoped ones and
    LISTEN has its own connection), and asyncpg still rolls back a transaction left open before
    calling this, so there is nothing to reset.
    """
    del conn


async def create_pool(
    settings: PgSettings, init: Callable[[Any], Awaitable[None]] | None = None
) -> Any:
    try:
        return await asyncpg.create_pool(
            min_size=settings.min_size,
            max_size=settings.max_size,
            reset=_keep_session,
            init=init,
            **settings.connect_kwargs(),
        )
    except UNAVAILABLE as exc:
        raise BackendUnavailable(
            f"cannot connect to PostgreSQL at {settings.describe()}: {type(exc).__name__}: {exc}"
        ) from exc


async def connect(settings: PgSettings) -> Any:
    try:
        return await asyncpg.connect(**settings.connect_kwargs())
    except UNAVAILABLE as exc:
        raise BackendUnavailable(
            f"cannot connect to PostgreSQL at {settings.describe()}: {type(exc).__name__}: {exc}"
        ) from exc


# -- migrations ------------------------------------------------------------------------------
_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def current_version(conn: Any, schema: str) -> int:
    table = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_version')
    if table is None:
        return 0
    version = await conn.fetchval(f'SELECT max(version) FROM "{schema}".schema_version')
    return int(version or 0)


async def migrate(conn: Any, schema: str, *, use_schema_file: bool = True) -> int:
    """Brings ``schema`` to the latest version; returns the version applied. Runs once whatever
    the number of processes starting together: the work happens in one transaction under an
    advisory lock on the schema's name, and re-checks the version under it. A fresh schema gets
    ``schema.sql`` in one go (``use_schema_file=False``: the migrations one by one)."""
    steps = migrations()
    latest = steps[-1].version
    if await current_version(conn, schema) >= latest:
        return latest
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"omniq-schema:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(_VERSION_TABLE)
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_version")}
        if not applied and use_schema_file:
            await conn.execute(schema_sql())
            pending = list(steps)
        else:
            pending = [m for m in steps if m.version not in applied]
            for step in pending:
                log.info(
                    "applying PostgreSQL migration %04d_%s to schema %s",
                    step.version,
                    step.name,
                    schema,
                )
                await conn.execute(step.sql)
        await conn.executemany(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2) "
            "ON CONFLICT (version) DO NOTHING",
            [(m.version, m.name) for m in pending],
        )
    return latest


# -- LISTEN ----------------------------------------------------------------------------------
class Listener:
    """One dedicated connection LISTENing on one channel.

    ``on_payload`` runs on the event loop for each notification. ``epoch`` changes with every
    (re)connection: a caller that took a snapshot under an older epoch cannot trust that it heard
    every notification since, and must look again. When the connection is lost, ``on_reset``
    wakes every waiter so that nobody sleeps through what was missed.
    """

    def __init__(
        self,
        settings: PgSettings,
        channel: str,
        on_payload: Callable[[str], None],
        on_reset: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.channel = channel
        self._on_payload = on_payload
        self._on_reset = on_reset
        self._conn: Any = None
        self._lock: asyncio.Lock | None = None
        self.epoch = 0
        self.alive = False

    async def ensure(self) -> None:
        if self.alive:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.alive:
                return
            conn = await connect(self.settings)
            try:
                await conn.add_listener(self.channel, self._notified)
            except BaseException:
                await conn.close()
                raise
            conn.add_termination_listener(self._terminated)
            OUTAGE.over()
            self._conn = conn
            self.epoch += 1
            self.alive = True

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_payload(payload)

    def _terminated(self, _conn: Any) -> None:
        if self.alive:
            OUTAGE.begin(f"the LISTEN connection on {self.channel} was lost")
        self.alive = False
        self._conn = None
        self._on_reset()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.alive = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(self.channel, self._notified)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        self._on_reset()


async def close_pool(pool: Any) -> None:
    """Closes gracefully, but never hangs on a connection somebody still holds."""
    try:
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()


__all__ = [
    "CONNECTION_OPTIONS",
    "DEFAULT_SCHEMA",
    "OUTAGE",
    "Listener",
    "PgSettings",
    "channel_name",
    "close_pool",
    "connect",
    "create_pool",
    "current_version",
    "migrate",
    "transient",
    "validate_schema",
]

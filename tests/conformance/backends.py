"""The backends the conformance suite runs on. A new backend joins by adding ONE entry to BACKENDS.

An entry is a :class:`BackendSpec`:

- ``name``: the test id (``test_x[memory]``, ``test_x[redis]``) and what ``-k`` selects.
- ``open``: ``open(*, queues=None)`` returns an async context manager that yields a fresh
  :class:`Stores` triple of *async*, connected components, and on exit closes them and removes
  whatever it created. ``queues`` is passed to the task queue's constructor (``queues=[...]``).
  Every call must be isolated from every other call, past or concurrent: a network backend uses
  a new namespace each time (``project_name=unique_namespace()``, a fresh database/schema, key
  prefix or stream). Network backends keep payload signing on (``secret_key=TEST_SECRET_KEY``),
  since the suite sends arguments that only the dill format carries.
- ``service``: ``"postgres"``, ``"redis"`` or ``"nats"`` when the backend needs a server. Its tests
  are then skipped when the server does not answer on 127.0.0.1 (failed under
  ``OMNIQ_REQUIRE_SERVICES=1``); see tests/conftest.py. A factory reads the server's address with
  ``service_address(service)`` (``from tests.conftest import service_address``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue
from omniq.storage.memory import AsyncMemoryEventStorage, AsyncMemoryQueue, AsyncMemoryResultStorage

#: Signs payloads on network backends (dill is refused there without a key).
TEST_SECRET_KEY = "omniq-conformance-suite-key"


class Stores(NamedTuple):
    queue: BaseTaskQueue
    results: BaseResultStorage
    events: BaseEventStorage


class OpenStores(Protocol):
    def __call__(
        self, *, queues: Sequence[str] | None = None
    ) -> AbstractAsyncContextManager[Stores]: ...


@dataclass(frozen=True)
class BackendSpec:
    name: str
    open: OpenStores
    service: str | None = None


def unique_namespace() -> str:
    """A project name no other test uses: isolates tests that share one server."""
    return f"conformance-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def open_memory(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    async with (
        AsyncMemoryQueue(queues=queues) as queue,
        AsyncMemoryResultStorage() as results,
        AsyncMemoryEventStorage() as events,
    ):
        yield Stores(queue, results, events)


@asynccontextmanager
async def open_postgres(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh schema ``omniq_test_<random>`` in the ``test`` database, dropped on exit."""
    import asyncpg  # type: ignore[import-untyped]

    from omniq.storage.postgres import (
        AsyncPostgresEventStorage,
        AsyncPostgresQueue,
        AsyncPostgresResultStorage,
    )
    from tests.conftest import service_address

    host, port = service_address("postgres")
    schema = f"omniq_test_{uuid.uuid4().hex[:12]}"
    common = {"host": host, "port": port, "username": "postgres", "database": "test"}
    try:
        async with (
            AsyncPostgresQueue(
                queues=queues, schema=schema, secret_key=TEST_SECRET_KEY, **common
            ) as queue,
            AsyncPostgresResultStorage(
                schema=schema, secret_key=TEST_SECRET_KEY, **common
            ) as results,
            AsyncPostgresEventStorage(schema=schema, **common) as events,
        ):
            yield Stores(queue, results, events)
    finally:
        conn = await asyncpg.connect(host=host, port=port, user="postgres", database="test")
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@asynccontextmanager
async def open_sqlite(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh database file in a temporary folder, removed on exit."""
    import tempfile

    from omniq.storage.sqlite import (
        AsyncSQLiteEventStorage,
        AsyncSQLiteQueue,
        AsyncSQLiteResultStorage,
    )

    with tempfile.TemporaryDirectory(prefix="omniq-conformance-") as folder:
        path = f"{folder}/omniq.db"
        async with (
            AsyncSQLiteQueue(path=path, queues=queues) as queue,
            AsyncSQLiteResultStorage(path=path) as results,
            AsyncSQLiteEventStorage(path=path) as events,
        ):
            yield Stores(queue, results, events)


@asynccontextmanager
async def open_redis(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh project name (the hash tag of every key) in database 9, which only tests use, so
    the SCAN that unlinks its keys on exit walks test keys alone."""
    import redis.asyncio as aioredis

    from omniq.storage.redis import (
        AsyncRedisEventStorage,
        AsyncRedisQueue,
        AsyncRedisResultStorage,
    )
    from tests.conftest import service_address

    host, port = service_address("redis")
    project = unique_namespace()
    common = {"host": host, "port": port, "database": 9, "project_name": project}
    try:
        async with (
            AsyncRedisQueue(queues=queues, secret_key=TEST_SECRET_KEY, **common) as queue,
            AsyncRedisResultStorage(secret_key=TEST_SECRET_KEY, **common) as results,
            AsyncRedisEventStorage(**common) as events,
        ):
            yield Stores(queue, results, events)
    finally:
        client = aioredis.Redis(host=host, port=port, db=9)
        try:
            keys = [k async for k in client.scan_iter(match=f"*{{{project}}}*", count=10_000)]
            if keys:
                await client.unlink(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def _redis_stores(
    connection: dict[str, object], queues: Sequence[str] | None
) -> AsyncIterator[Stores]:
    """The three Redis components on ``connection`` under a fresh project name (the hash tag
    of every key); the project's keys are unlinked on exit."""
    from omniq.storage.redis import (
        AsyncRedisEventStorage,
        AsyncRedisQueue,
        AsyncRedisResultStorage,
    )

    common = {**connection, "project_name": unique_namespace()}
    try:
        async with (
            AsyncRedisQueue(queues=queues, secret_key=TEST_SECRET_KEY, **common) as queue,
            AsyncRedisResultStorage(secret_key=TEST_SECRET_KEY, **common) as results,
            AsyncRedisEventStorage(**common) as events,
        ):
            yield Stores(queue, results, events)
    finally:
        async with AsyncRedisQueue(**common) as cleaner:
            client = cleaner.redis
            # on a Cluster, scan_iter walks every node (the keys are all on one of them)
            match = f"*{{{common['project_name']}}}*"
            keys = [k async for k in client.scan_iter(match=match, count=10_000)]
            if keys:
                await client.unlink(*keys)


@asynccontextmanager
async def open_redis_cluster(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A 3-master Redis Cluster that the suite starts itself (tests/backends/redis_servers.py)."""
    from tests.backends.redis_servers import shared_cluster

    cluster = shared_cluster()
    async with _redis_stores({"cluster_nodes": cluster.nodes}, queues) as stores:
        yield stores


@asynccontextmanager
async def open_redis_sentinel(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A master found through three sentinels that the suite starts itself."""
    from tests.backends.redis_servers import shared_sentinel

    setup = shared_sentinel()
    connection = {"sentinels": setup.sentinels, "sentinel_master": setup.master_name}
    async with _redis_stores(connection, queues) as stores:
        yield stores


@asynccontextmanager
async def _file_stores(
    base_dir: str, options: dict[str, str] | None, queues: Sequence[str] | None
) -> AsyncIterator[Stores]:
    """The three file components on ``base_dir`` under a fresh project name (its own prefix)."""
    from omniq.storage.file import AsyncFileEventStorage, AsyncFileQueue, AsyncFileResultStorage

    common = {
        "base_dir": base_dir,
        "storage_options": options,
        "project_name": unique_namespace(),
    }
    async with (
        AsyncFileQueue(queues=queues, secret_key=TEST_SECRET_KEY, **common) as queue,
        AsyncFileResultStorage(secret_key=TEST_SECRET_KEY, **common) as results,
        AsyncFileEventStorage(**common) as events,
    ):
        yield Stores(queue, results, events)


@asynccontextmanager
async def open_file_local(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh local folder, removed on exit."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="omniq-conformance-") as folder:
        async with _file_stores(folder, None, queues) as stores:
            yield stores


@asynccontextmanager
async def open_file_memory(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    async with _file_stores(f"memory://{uuid.uuid4().hex}", None, queues) as stores:
        yield stores


@asynccontextmanager
async def open_file_s3(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh bucket on moto's S3 server, which the suite starts itself."""
    from tests.backends.object_servers import shared_s3

    server = shared_s3()
    bucket = server.create_bucket()
    async with _file_stores(f"s3://{bucket}/omniq", server.options(), queues) as stores:
        yield stores


@asynccontextmanager
async def open_file_azure(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh container on Azurite, which the suite starts (and installs) itself."""
    from tests.backends.object_servers import shared_azurite

    server = shared_azurite()
    container = server.create_container()
    async with _file_stores(f"az://{container}/omniq", server.options(), queues) as stores:
        yield stores


@asynccontextmanager
async def open_nats(*, queues: Sequence[str] | None = None) -> AsyncIterator[Stores]:
    """A fresh project name (its own stream, KV buckets and events stream) on the loopback NATS
    server; everything it created is deleted on exit."""
    from omniq.storage.nats import AsyncNATSEventStorage, AsyncNATSQueue, AsyncNATSResultStorage
    from omniq.storage.nats._conn import delete_project
    from tests.conftest import service_address

    host, port = service_address("nats")
    common = {"servers": [f"nats://{host}:{port}"], "project_name": unique_namespace()}
    queue = AsyncNATSQueue(queues=queues, secret_key=TEST_SECRET_KEY, **common)
    try:
        async with (
            queue,
            AsyncNATSResultStorage(secret_key=TEST_SECRET_KEY, **common) as results,
            AsyncNATSEventStorage(**common) as events,
        ):
            yield Stores(queue, results, events)
    finally:
        async with AsyncNATSQueue(**common) as cleaner:
            await delete_project(cleaner)


BACKENDS: list[BackendSpec] = [
    BackendSpec("memory", open_memory),
    BackendSpec("sqlite", open_sqlite),
    BackendSpec("postgres", open_postgres, service="postgres"),
    BackendSpec("redis", open_redis, service="redis"),
    BackendSpec("redis-cluster", open_redis_cluster),
    BackendSpec("redis-sentinel", open_redis_sentinel),
    BackendSpec("file-local", open_file_local),
    BackendSpec("file-memory", open_file_memory),
    BackendSpec("file-s3", open_file_s3),
    BackendSpec("file-azure", open_file_azure),
    BackendSpec("nats", open_nats, service="nats"),
]

"""Redis ``enqueue_many`` is all or nothing: a batch larger than one script call is staged out
of sight and committed by one script, so a producer cut off mid-batch leaves nothing visible
and the same batch sent again stores every task exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

aioredis = pytest.importorskip("redis.asyncio")

from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from reliability.harness import unlink_project  # noqa: E402

from omniq.exceptions import BackendUnavailable  # noqa: E402
from omniq.models.task import Task, TaskStatus  # noqa: E402
from omniq.storage.redis import AsyncRedisQueue  # noqa: E402
from omniq.storage.redis._enqueue import STAGE_TTL_MS  # noqa: E402
from omniq.storage.redis._rows import CHUNK  # noqa: E402
from tests.conftest import service_address  # noqa: E402

pytestmark = pytest.mark.services("redis")

FUNC = "tests.backends.test_redis:double"


class CuttableProxy:
    """A TCP relay to Redis that can be cut: every relayed connection is closed and new ones are
    refused, as when a producer's network goes away (a real fault in the real connection)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += (writer, up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()


@pytest.fixture
async def project() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    await unlink_project(*service_address("redis"), name)


def _batch() -> list[Task]:
    """Three and a half pieces, with dependencies that cross pieces both ways."""
    tasks = [Task(func=FUNC, args=(i, i)) for i in range(3 * CHUNK + CHUNK // 2)]
    tasks[5].depends_on = [tasks[3 * CHUNK + 1].id]  # piece 0 waits on the last piece
    tasks[CHUNK + 7].depends_on = [tasks[0].id]  # piece 1 waits on piece 0
    tasks[-1].depends_on = [tasks[2 * CHUNK].id, tasks[1].id]
    return tasks


async def _staged_keys(project: str) -> dict[bytes, int]:
    host, port = service_address("redis")
    client = aioredis.Redis(host=host, port=port)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{{{project}}}:stage:*")]
        return {k: await client.pttl(k) for k in keys}
    finally:
        await client.aclose()


async def test_a_batch_cut_off_after_its_first_piece_stores_nothing_and_its_retry_stores_all(
    project: str,
) -> None:
    host, port = service_address("redis")
    proxy = CuttableProxy(host, port)
    await proxy.start()
    tasks = _batch()
    async with (
        AsyncRedisQueue(host="127.0.0.1", port=proxy.port, project_name=project) as producer,
        AsyncRedisQueue(host=host, port=port, project_name=project) as direct,
    ):
        stage = producer._scripts["stage"]
        staged = 0

        async def stage_then_cut(*, keys: list[Any], args: list[Any]) -> Any:
            nonlocal staged
            reply = await stage(keys=keys, args=args)
            staged += 1
            if staged == 1:  # the first piece is on the server: the network goes away
                await proxy.cut()
            return reply

        producer._scripts["stage"] = stage_then_cut  # type: ignore[assignment]

        with pytest.raises((BackendUnavailable, RedisConnectionError)):
            await producer.enqueue_many(tasks)

        assert staged == 1
        # nothing is visible: not listed, not counted, not claimable, not settled away
        assert await direct.list_tasks(limit=10) == []
        assert await direct.stats() == {}
        assert await direct.get_queue_size() == 0
        assert await direct.get_task(tasks[0].id) is None
        assert await direct.dequeue() is None
        assert await direct.settle_waiting() == 0
        # the piece that reached the server waits out of sight, and expires by itself
        left = await _staged_keys(project)
        assert len(left) == 1
        assert all(0 < ttl <= STAGE_TTL_MS for ttl in left.values())

        # the producer comes back and sends the same batch, same ids
        ids = await direct.enqueue_many(tasks)

        assert ids == [t.id for t in tasks]
        listed = await direct.list_tasks(limit=len(tasks) + 10)
        assert sorted(t.id for t in listed) == sorted(t.id for t in tasks)
        waiting = {t.id for t in listed if t.status is TaskStatus.WAITING}
        assert waiting == {tasks[5].id, tasks[CHUNK + 7].id, tasks[-1].id}
        assert await direct.get_queue_size() == len(tasks) - 3
        assert await direct.settle_waiting() == 0  # every dependency exists: nobody cancelled
        # the retry's own pieces went with its commit; the cut batch's piece is left to expire
        pieces = {k for k in await _staged_keys(project) if b":" in k.split(b":stage:")[1]}
        assert pieces == set(left)

        # sent a third time: nothing new, nothing changed
        await direct.enqueue_many([Task(func=FUNC, args=(0, 0), id=t.id) for t in tasks])
        assert len(await direct.list_tasks(limit=len(tasks) + 10)) == len(tasks)

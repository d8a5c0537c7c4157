"""Redis: how the scripts reach the server (``omniq.storage.redis._scripts``).

On Redis 7 each script runs as the one function of a library named after its SHA, loaded on
first use and again after a FUNCTION FLUSH; a server without FCALL gets EVALSHA. Sequential
calls share one kept connection (the lane), concurrent ones use the pool, and the sync API
enqueues in the caller's thread on a blocking connection; whatever fails on those goes the
usual way. Private servers where a test flushes or renames commands."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from omniq import AsyncOmniQ, OmniQ  # noqa: E402
from omniq.backend import create_backend  # noqa: E402
from omniq.storage.redis import AsyncRedisQueue  # noqa: E402
from omniq.storage.redis._scripts import library, lua, pack  # noqa: E402
from tests.backends.redis_servers import (  # noqa: E402
    HOST,
    Servers,
    free_port,
    require_redis_server,
)

DOUBLE = "tests.backends.test_redis:double"


@pytest.fixture
def server() -> Iterator[int]:
    """A private Redis (this file flushes its functions and scripts)."""
    require_redis_server()
    servers = Servers()
    port = free_port()
    servers.start(port)
    try:
        yield port
    finally:
        servers.stop()


@pytest.fixture
def no_fcall() -> Iterator[int]:
    """A private Redis that runs no functions, as before Redis 7."""
    require_redis_server()
    servers = Servers()
    port = free_port()
    servers.start(port, "--rename-command", "FCALL", "", "--rename-command", "FUNCTION", "")
    try:
        yield port
    finally:
        servers.stop()


def _queue(port: int, **extra: Any) -> AsyncRedisQueue:
    return AsyncRedisQueue(host=HOST, port=port, project_name=f"t-{uuid.uuid4().hex[:8]}", **extra)


def _libraries(port: int) -> list[str]:
    client = redis.Redis(host=HOST, port=port)
    try:
        entries = [dict(zip(e[::2], e[1::2], strict=True)) for e in client.function_list()]
        return [entry[b"library_name"].decode() for entry in entries]
    finally:
        client.close()


def _command_calls(port: int, name: str) -> int:
    client = redis.Redis(host=HOST, port=port)
    try:
        stats = client.info("commandstats").get(f"cmdstat_{name}")
        return int(stats["calls"]) if stats else 0
    finally:
        client.close()


async def test_scripts_run_as_functions_loaded_again_after_a_flush(server: int) -> None:
    async with _queue(server) as queue:
        first = await queue.enqueue(DOUBLE, args=(1,))
        enqueue = queue._scripts["enqueue"]
        assert enqueue.functions is True
        assert enqueue.function in _libraries(server)
        client = redis.Redis(host=HOST, port=server)
        client.function_flush()
        client.script_flush()
        client.close()
        second = await queue.enqueue(DOUBLE, args=(2,))
        claimed = await queue.dequeue_many(limit=5)

    assert enqueue.function in _libraries(server)
    assert sorted(t.id for t in claimed) == sorted([first, second])
    assert _command_calls(server, "evalsha") == 0


async def test_a_server_without_functions_gets_evalsha(no_fcall: int) -> None:
    async with _queue(no_fcall) as queue:
        task_id = await queue.enqueue(DOUBLE, args=(1,))
        claimed = await queue.dequeue_many(limit=5)
        enqueue = queue._scripts["enqueue"]

    assert [t.id for t in claimed] == [task_id]
    assert enqueue.functions is False
    assert _command_calls(no_fcall, "evalsha") >= 2


async def test_concurrent_calls_share_the_lane_and_the_pool(server: int) -> None:
    async with _queue(server, max_connections=4) as queue:
        ids = await asyncio.gather(*(queue.enqueue(DOUBLE, args=(i,)) for i in range(60)))
        claimed = await queue.dequeue_many(limit=100)

    assert sorted(t.id for t in claimed) == sorted(ids)


async def test_a_lane_whose_connection_was_killed_sends_the_call_again(server: int) -> None:
    async with _queue(server) as queue:
        await queue.enqueue(DOUBLE, args=(1,))
        client = redis.Redis(host=HOST, port=server)
        killed = client.client_kill_filter(_type="normal", skipme=True)
        client.close()
        assert killed >= 1
        task_id = await queue.enqueue(DOUBLE, args=(2,))
        claimed = await queue.dequeue_many(limit=5)

    assert task_id in [t.id for t in claimed]
    assert len(claimed) == 2


def test_the_sync_api_enqueues_in_the_callers_thread(server: int) -> None:
    oq = OmniQ.from_backend(create_backend(url=f"redis://{HOST}:{server}/0"))
    oq.connect()
    try:
        first = oq.enqueue(DOUBLE, args=(1,))  # the asyncio way: it loads the function
        caller = threading.get_ident()
        seen: list[tuple[int, bool]] = []  # (thread, made there)
        queue: Any = oq.async_.task_queue
        real = queue._enqueue_blocking

        def spied(items: Any) -> Any:
            made = real(items)
            seen.append((threading.get_ident(), made is not None))
            return made

        queue._enqueue_blocking = spied
        second = oq.enqueue(DOUBLE, args=(2,))
        client = redis.Redis(host=HOST, port=server)
        client.client_kill_filter(_type="normal", skipme=True)  # both lanes' connections
        client.close()
        third = oq.enqueue(DOUBLE, args=(3,))  # the blocking lane fails: the asyncio way
        fourth = oq.enqueue(DOUBLE, args=(4,))
        stored = {t.id for t in oq.list_tasks(limit=10)}
    finally:
        oq.close()

    assert seen == [(caller, True), (caller, False), (caller, True)]
    assert stored == {first, second, third, fourth}


def test_a_bad_sync_enqueue_raises_as_on_the_loop(server: int) -> None:
    oq = OmniQ.from_backend(create_backend(url=f"redis://{HOST}:{server}/0"))
    oq.connect()
    try:
        oq.enqueue(DOUBLE, args=(1,))
        with pytest.raises(ValueError, match="priority"):
            oq.enqueue(DOUBLE, args=(2,), priority=2**60)
    finally:
        oq.close()


async def test_the_async_app_runs_enqueue_and_claim_as_functions(server: int) -> None:
    oq = AsyncOmniQ.from_backend(create_backend(url=f"redis://{HOST}:{server}/0"))
    await oq.connect()
    try:
        await oq.enqueue(DOUBLE, args=(1,))
        await oq.task_queue.dequeue_many(limit=1)
    finally:
        await oq.close()
    assert _command_calls(server, "fcall") >= 2
    assert _command_calls(server, "evalsha") == 0


def test_a_library_defines_its_helpers_once_and_reads_keys_per_call() -> None:
    text = library("omniq_x", ("tasks_lib", "stats"))
    assert text.startswith("#!lua name=omniq_x\nlocal KEYS, ARGV\n")
    assert "tasks_begin() return main()" in text
    # the EVAL text reads the keys before the script's own text, at the top
    eval_text = lua("tasks_lib", "stats")
    assert eval_text.index("\ntasks_begin()\n") < eval_text.index("Counts by queue")


def test_pack_encodes_as_redis_py_and_refuses_other_values() -> None:
    from redis.asyncio.connection import Connection

    args = ("FCALL", "f", 1, b"k\xff", "é", 2.5, -3)
    assert pack(args) == b"".join(Connection().pack_command(*args))
    with pytest.raises(TypeError, match="None"):
        pack(("SET", "k", None))
    with pytest.raises(TypeError, match="True"):
        pack(("SET", "k", True))

"""The Redis backend on a real 3-master Redis Cluster that the tests start themselves
(tests/backends/redis_servers.py). The whole conformance suite runs on it too
(``-k redis-cluster``); these are the Cluster-specific behaviours."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("redis.asyncio")

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from omniq import AsyncOmniQ
from omniq.backend import create_backend
from omniq.exceptions import BackendUnavailable
from omniq.models.config import RedisConfig
from omniq.models.result import TaskResult
from omniq.storage.redis import AsyncRedisQueue, AsyncRedisResultStorage
from omniq.storage.redis._cluster import FollowedCluster
from tests import tasks_fixture as tf
from tests.backends.redis_servers import Cluster, shared_cluster, start_cluster


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return shared_cluster()


def _client(cluster: Cluster) -> RedisCluster:
    host, port = cluster.nodes[0].split(":")
    return RedisCluster(startup_nodes=[ClusterNode(host, int(port))])


@pytest.fixture
async def project(cluster: Cluster) -> AsyncIterator[str]:
    """A project of this test alone; its keys (one slot) are unlinked afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = _client(cluster)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{{{name}}}*", count=10_000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


async def test_a_cluster_url_serves_tasks_end_to_end_with_a_worker(
    cluster: Cluster, project: str
) -> None:
    url = "redis+cluster://" + ",".join(cluster.nodes)
    async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
        await oq.start_worker(concurrency=10)
        ids = [await oq.enqueue(tf.add, args=(n, n)) for n in range(20)]

        results = await asyncio.gather(*(oq.get_result(i, timeout=30) for i in ids))

        assert results == [2 * n for n in range(20)]
        health = await oq.task_queue.health_check()
        assert health["status"] == "healthy"
        assert health["topology"] == "cluster"


async def test_one_node_given_finds_the_others(cluster: Cluster, project: str) -> None:
    host, port = cluster.nodes[-1].split(":")
    config = RedisConfig(host=host, port=int(port), cluster=True)
    async with AsyncRedisQueue.from_config(config) as queue:
        queue_client = queue.redis
        assert isinstance(queue_client, RedisCluster)
        assert len(queue_client.get_primaries()) == 3


async def test_a_project_lives_on_the_one_node_that_holds_its_slot(
    cluster: Cluster, project: str
) -> None:
    options = {"cluster_nodes": cluster.nodes, "project_name": project}
    async with (
        AsyncRedisQueue(**options) as queue,
        AsyncRedisResultStorage(**options) as results,
    ):
        await queue.enqueue(tf.add, args=(1, 2), queue_name="a")
        await queue.enqueue(tf.add, args=(1, 2), queue_name="b", run_in=60, ttl=120)
        parent = await queue.enqueue(tf.add, args=(1, 2), queue_name="a")
        await queue.enqueue(tf.add, args=(3, 4), depends_on=[parent])
        task = await queue.dequeue(["a"])
        assert task is not None
        await queue.complete(
            task.id,
            task.claim or "",
            TaskResult(task_id=task.id, result=3, ttl=60),
            result_storage=results,
        )

    client = _client(cluster)
    try:
        await client.initialize()
        holders = {}
        for node in client.get_primaries():
            keys = [
                k
                async for k in client.scan_iter(
                    match=f"*{{{project}}}*", count=10_000, target_nodes=node
                )
            ]
            if keys:
                holders[node.name] = keys
    finally:
        await client.aclose()
    [keys] = holders.values()
    assert any(b":task:" in k for k in keys)
    assert any(b":result:" in k for k in keys)
    assert {key_slot(k) for k in keys} == {key_slot(project.encode())}


async def test_callers_beyond_max_connections_wait_instead_of_failing(
    cluster: Cluster, project: str
) -> None:
    """redis-py's cluster client raises when a node's connections are all busy; OmniQ's waits
    for one, as its single-server pool does."""
    async with AsyncRedisQueue(
        cluster_nodes=cluster.nodes, project_name=project, max_connections=2
    ) as queue:
        ids = await asyncio.gather(*(queue.enqueue(tf.add, args=(n, 1)) for n in range(300)))

        assert len(set(ids)) == 300
        assert await queue.get_queue_size() == 300


async def test_an_idle_claimer_wakes_on_enqueue_through_blpop_on_the_slot_node(
    cluster: Cluster, project: str
) -> None:
    options = {"cluster_nodes": cluster.nodes, "project_name": project}
    async with AsyncRedisQueue(**options) as claimer, AsyncRedisQueue(**options) as producer:
        waiting = asyncio.create_task(claimer.dequeue(timeout=20))
        await asyncio.sleep(0.3)
        assert not waiting.done()

        task_id = await producer.enqueue(tf.add, args=(1, 1))

        task = await asyncio.wait_for(waiting, 5)
        assert task is not None
        assert task.id == task_id


async def test_a_caller_waits_for_a_free_connection_at_most_socket_timeout(
    cluster: Cluster, project: str
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    async with AsyncRedisQueue(
        cluster_nodes=cluster.nodes, project_name=project, max_connections=2, socket_timeout=0.3
    ) as queue:
        client = queue.redis
        slots = client._omniq_slots  # type: ignore[union-attr]
        for _ in range(2):  # every connection busy, as with two long commands in flight
            await slots.acquire()
        try:
            with pytest.raises(RedisConnectionError, match=r"no connection free within 0\.3s"):
                await queue.get_queue_size()
        finally:
            slots.release()
            slots.release()

        assert await queue.get_queue_size() == 0


# -- wait_replicas: the write and its WAIT on one connection of the slot's master ---------------
async def test_wait_replicas_beyond_the_replicas_there_are_fails_the_enqueue_clearly(
    cluster: Cluster, project: str
) -> None:
    """The shared Cluster's masters have no replica: the WAIT, sent to the slot's master right
    after the write, counts 0 (a WAIT sent to any other node would count that node's)."""
    queue = AsyncRedisQueue(
        cluster_nodes=cluster.nodes, project_name=project, wait_replicas=1, socket_timeout=1.5
    )
    async with queue:
        with pytest.raises(BackendUnavailable, match="only 0 of wait_replicas=1 replicas"):
            await queue.enqueue(tf.add, args=(1, 1))


async def test_commands_sent_together_follow_a_moved_slot(cluster: Cluster, project: str) -> None:
    """The write and its WAIT go to the slot's master on one connection; a slot map that names
    another master (the slot moved meanwhile) is corrected by the MOVED reply."""
    async with AsyncRedisQueue(cluster_nodes=cluster.nodes, project_name=project) as queue:
        client = queue.redis
        assert isinstance(client, FollowedCluster)
        key = f"omniq:test:{{{project}}}"
        owner = client.get_node_from_key(key)
        assert owner is not None
        other = next(n for n in client.get_primaries() if n.name != owner.name)
        client.nodes_manager.slots_cache[client.keyslot(key)] = [other]

        replies = await client.together(key, ("SET", key, "v"), ("GET", key))

        assert replies == [True, b"v"]
        moved_back = client.get_node_from_key(key)
        assert moved_back is not None
        assert moved_back.name == owner.name


async def test_commands_sent_together_follow_an_ask_redirection(
    cluster: Cluster, project: str
) -> None:
    """While the slot migrates, a key its master no longer has is asked for on the importing
    node: the commands go there after ASKING."""
    async with AsyncRedisQueue(cluster_nodes=cluster.nodes, project_name=project) as queue:
        client = queue.redis
        assert isinstance(client, FollowedCluster)
        key = f"omniq:test:{{{project}}}"
        slot = client.keyslot(key)
        owner = client.get_node_from_key(key)
        assert owner is not None
        other = next(n for n in client.get_primaries() if n.name != owner.name)
        source = aioredis.Redis(host=owner.host, port=int(owner.port))
        target = aioredis.Redis(host=other.host, port=int(other.port))
        source_id = await source.execute_command("CLUSTER MYID")
        target_id = await target.execute_command("CLUSTER MYID")
        await target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        await source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        try:
            replies = await client.together(key, ("SET", key, "v"), ("WAIT", 0, 100))

            assert replies == [True, 0]
            async with target.pipeline(transaction=False) as pipe:
                pipe.execute_command("ASKING")
                pipe.get(key)
                pipe.execute_command("ASKING")
                pipe.delete(key)
                _, value, _, deleted = await pipe.execute()
            assert (value, deleted) == (b"v", 1)
        finally:
            for node in (target, source):
                await node.execute_command("CLUSTER SETSLOT", slot, "STABLE")
                await node.aclose()


async def test_a_left_master_is_refused_until_the_cluster_lists_it_as_a_master_again(
    cluster: Cluster, project: str
) -> None:
    """What the follower does when a master is replaced (here told so, the master being fine):
    its connections are dropped and new ones refused at once (so nothing waits on a hung
    master); the next reading of the slot map, which still lists it, takes it back."""
    async with AsyncRedisResultStorage(cluster_nodes=cluster.nodes, project_name=project) as store:
        await store.set(TaskResult(task_id="t-1", result=1))
        follower = store._conn.cluster
        assert follower is not None
        owner = follower.owner(store._base)
        assert owner is not None

        await follower._leave(owner)

        with pytest.raises(Exception, match="was replaced by its replica"):
            await store.get("t-1")
        await follower.refresh()
        assert owner not in follower.left
        result = await store.get("t-1")
        assert result is not None
        assert result.result == 1


@pytest.fixture(scope="module")
def replicated() -> Iterator[Cluster]:
    """A private Cluster whose masters have a replica each."""
    topology = start_cluster(3, replicas=1)
    try:
        yield topology
    finally:
        topology.servers.stop()


async def test_with_wait_replicas_an_acknowledged_enqueue_is_already_on_the_replica(
    replicated: Cluster,
) -> None:
    project = f"wait-{uuid.uuid4().hex[:8]}"
    url = "redis+cluster://" + ",".join(replicated.nodes) + "?wait_replicas=1"
    master = replicated.master_of(f"{{{project}}}")
    replica = aioredis.Redis(host="127.0.0.1", port=replicated.replica_of(master))
    try:
        async with AsyncOmniQ.from_backend(create_backend(url=url, project_name=project)) as oq:
            for n in range(20):
                task_id = await oq.enqueue(tf.add, args=(n, n))
                keys = [k async for k in replica.scan_iter(match=f"*{{{project}}}*{task_id}*")]
                assert keys, "the enqueue returned before the replica had the task"

            await oq.start_worker(concurrency=2)
            assert await oq.get_result(task_id, timeout=30) == 38
    finally:
        await replica.aclose()


async def test_a_hung_first_startup_node_does_not_hold_up_the_start(cluster: Cluster) -> None:
    """A listening socket nobody reads from answers TCP and nothing else, as a stopped
    (SIGSTOP) node does. Before, redis-py asked it for the slot map first and waited the
    whole socket timeout (30 s per try) before asking the next node."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        nodes = [f"127.0.0.1:{hung.getsockname()[1]}", *cluster.nodes]
        queue = AsyncRedisQueue(cluster_nodes=nodes, project_name=f"hung-{uuid.uuid4().hex[:8]}")
        started = time.monotonic()
        async with queue:
            assert await queue.get_queue_size("default") == 0
        assert time.monotonic() - started < 10  # a bound on a hang, not a speed figure

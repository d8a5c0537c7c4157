"""Redis Cluster clients: redis-py's ``RedisCluster``, bounded so that many callers share a few
connections per node, started from the startup nodes that answer, and plain clients of the one
node that holds a key's slot (pub/sub)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from omniq.exceptions import BackendUnavailable
from omniq.storage.redis._options import Topology

#: Seconds a Cluster startup node has to answer a PING before the others are asked first.
PROBE = 2.0


class _BoundedCluster(RedisCluster):
    """redis-py's cluster client fails a command when all ``max_connections`` of a node are
    busy; this one makes the command wait for a free place instead, as the pool of a single
    server does (and, as it does, for at most ``socket_timeout`` seconds), so thousands of
    concurrent callers share a few connections."""

    def __init__(self, *args: Any, slots: int, **kwargs: Any) -> None:
        kwargs["max_connections"] = slots
        super().__init__(*args, **kwargs)
        self._omniq_slots = asyncio.Semaphore(slots)
        self._omniq_wait: float | None = kwargs.get("socket_timeout")

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._omniq_wait):
                await self._omniq_slots.acquire()
        except TimeoutError:
            raise RedisConnectionError(
                f"no connection free within {self._omniq_wait}s ({args[0]!r} not sent)"
            ) from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._omniq_slots.release()


def cluster_client(topology: Topology, slots: int | None, **options: Any) -> RedisCluster:
    """A client of the Cluster; with ``slots``, one whose callers wait for a free connection
    (at most ``slots`` per node) instead of failing."""
    merged = {**topology.redis_kwargs, **options}
    merged.pop("retry_on_timeout", None)  # RedisCluster retries timeouts itself
    url = topology.options.url
    if url is not None and not topology.nodes:
        if slots is None:
            return RedisCluster.from_url(url, **merged)
        return _BoundedCluster.from_url(url, slots=slots, **merged)
    nodes = [ClusterNode(host, port) for host, port in topology.nodes]
    if slots is None:
        return RedisCluster(startup_nodes=nodes, **merged)
    return _BoundedCluster(startup_nodes=nodes, slots=slots, **merged)


async def _answers(host: str, port: int, kwargs: dict[str, Any]) -> bool:
    probe = aioredis.Redis(
        host=host,
        port=port,
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        ssl=bool(kwargs.get("ssl")),
        socket_timeout=PROBE,
        socket_connect_timeout=PROBE,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        reply = probe.ping()
        if inspect.isawaitable(reply):
            await reply
    except (RedisError, OSError):
        return False
    finally:
        await probe.aclose()
    return True


async def rank_startup_nodes(topology: Topology) -> None:
    """Puts the startup nodes that answer a PING within :data:`PROBE` seconds first.
    redis-py asks them for the slot map one after the other, each with the full socket
    timeout: with the first node hung (alive for TCP, answering nothing), every worker and
    client took a minute to start."""
    nodes = topology.nodes
    if len(nodes) < 2:
        return
    good = await asyncio.gather(*(_answers(h, p, topology.redis_kwargs) for h, p in nodes))
    ranked = sorted(zip(good, range(len(good)), nodes, strict=True), key=lambda g: not g[0])
    topology.nodes = [node for _, _, node in ranked]


async def slot_node_client(topology: Topology, key: str, where: str) -> aioredis.Redis:
    """A plain client (no read timeout) of the node that holds ``key``'s slot now."""
    cluster = cluster_client(topology, None)
    try:
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
    finally:
        await cluster.aclose()
    if node is None:
        raise BackendUnavailable(f"no node of {where} serves channel {key!r}")
    pool = aioredis.ConnectionPool(
        connection_class=node.connection_class,
        **{**node.connection_kwargs, "socket_timeout": None},
    )
    return aioredis.Redis.from_pool(pool)


__all__ = ["PROBE", "RedisCluster", "cluster_client", "rank_startup_nodes", "slot_node_client"]

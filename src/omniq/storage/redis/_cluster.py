"""Redis Cluster clients: redis-py's ``RedisCluster``, bounded so that many callers share a few
connections per node, started from the startup nodes that answer, followed across failovers
(:class:`ClusterFollower`), with commands run together on one connection of a slot's node
(a write and its ``WAIT``), and plain clients of the one node that holds a key's slot
(pub/sub)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omniq._aio import idle
from omniq.exceptions import BackendUnavailable
from omniq.storage.redis._conn_abort import abort
from omniq.storage.redis._options import Topology

log = logging.getLogger("omniq.storage.redis")

#: Seconds a Cluster startup node has to answer a PING before the others are asked first.
PROBE = 2.0
Address = tuple[str, int]
#: (first slot, last slot, master) of each slot range, as CLUSTER SLOTS lists them
SlotMap = list[tuple[int, int, Address]]


def _probe_client(host: str, port: int, kwargs: dict[str, Any], timeout: float) -> aioredis.Redis:
    """A one-connection client that gives up after ``timeout`` seconds and never retries: for
    asking the nodes themselves, apart from the clients' pools."""
    return aioredis.Redis(
        host=host,
        port=port,
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        ssl=bool(kwargs.get("ssl")),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


class ClusterFollower:
    """Follows which node is master of each slot, and leaves a master at once when the Cluster
    has promoted its replica.

    A hung master (SIGSTOP, a stalled host: connections open, nothing answered) held every
    command already sent to it for ``socket_timeout`` (30.1 s measured), although its replica
    took over within seconds; redis-py 7.4.1 notices a replacement only when a command to the
    old master fails. A watchdog per redis-py node object did not help, because redis-py
    replaces its node objects on every reload of the slot map, while commands go on waiting on
    the connections of the replaced ones. So the connections are tracked by address instead:
    every connection this follower's clients open is of a class made here
    (:meth:`connection_class`), which registers itself and refuses to connect to a master that
    was left. Once a second the slot map is read (CLUSTER SLOTS, from a node that answers
    within a second); a master that no longer serves any slot was replaced: every connection
    to it is aborted (the commands on them fail at once and redis-py retries them on the new
    master) and every client reloads its slot map. A left address is used again once the
    Cluster lists it as a master again.
    """

    INTERVAL = 1.0
    #: seconds a node has to answer CLUSTER SLOTS before the next one is asked
    ASK_TIMEOUT = 1.0

    def __init__(self, topology: Topology) -> None:
        self._topology = topology
        self._connections: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()
        self._clients: weakref.WeakSet[FollowedCluster] = weakref.WeakSet()
        self._classes: dict[type[AbstractConnection], type[AbstractConnection]] = {}
        #: the slot map as last read
        self.slots: SlotMap = []
        self._replicas: list[Address] = []
        #: masters replaced by their replica: their connections were aborted, new ones refused
        self.left: set[Address] = set()
        self._asking: tuple[Address, aioredis.Redis] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- connections -------------------------------------------------------------------------
    def connection_class(self, base: type[AbstractConnection]) -> type[AbstractConnection]:
        """``base`` (redis-py's connection class or its SSL one), tracked by this follower."""
        tracked = self._classes.get(base)
        if tracked is None:
            follower = self

            class Tracked(base):  # type: ignore[valid-type,misc]
                def __init__(self, **kwargs: Any) -> None:
                    super().__init__(**kwargs)
                    follower._connections.add(self)

                async def _connect(self) -> None:
                    address = (str(self.host), int(self.port))
                    if address in follower.left:
                        raise OSError(
                            f"{address[0]}:{address[1]} was replaced by its replica "
                            "(left: hung or gone)"
                        )
                    await super()._connect()

            Tracked.__name__ = Tracked.__qualname__ = f"Followed{base.__name__}"
            tracked = self._classes[base] = Tracked
        return tracked

    def follow(self, client: FollowedCluster) -> None:
        """Tracks ``client``'s connections (made from now on) and reloads its slot map when a
        master is left; starts following."""
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = self.connection_class(kwargs["connection_class"])
        for node in client.nodes_manager.startup_nodes.values():
            node.connection_class = kwargs["connection_class"]
        self._clients.add(client)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="omniq-redis-cluster")

    # -- the slot map --------------------------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            await idle(self.INTERVAL)
            if not self._clients:
                return  # every client is gone: a new one starts following again
            try:
                await self.refresh()
            except Exception as exc:  # the next round asks again
                log.debug("Redis Cluster slot map not read: %s", exc)

    def _candidates(self) -> list[Address]:
        """The node that answered last first, then the replicas (a hung master is the one
        thing not to wait for), then the masters and the startup nodes."""
        masters = [address for _, _, address in self.slots]
        started = [
            (str(node.host), int(node.port))
            for client in list(self._clients)
            for node in list(client.nodes_manager.startup_nodes.values())
        ]
        known = [*self._topology.nodes, *masters, *started]
        replicas = [a for a in self._replicas if a not in masters]
        order = ([self._asking[0]] if self._asking else []) + replicas + known
        return [a for a in dict.fromkeys(order) if a not in self.left]

    async def _ask(self) -> list[Any] | None:
        """CLUSTER SLOTS from the first node that answers within :data:`ASK_TIMEOUT`."""
        kwargs = self._topology.redis_kwargs
        for address in self._candidates():
            if self._asking is None or self._asking[0] != address:
                await self._drop_asking()
                self._asking = (
                    address,
                    _probe_client(*address, kwargs, self.ASK_TIMEOUT),
                )
            try:
                reply = self._asking[1].execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
                return list(await reply if inspect.isawaitable(reply) else reply)
            except (RedisError, OSError) as exc:
                log.debug("Redis Cluster node %s:%s did not answer: %s", *address, exc)
                await self._drop_asking()
        return None

    async def _drop_asking(self) -> None:
        asking, self._asking = self._asking, None
        if asking is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asking[1].aclose(), self.ASK_TIMEOUT)

    async def refresh(self) -> None:
        """Reads the slot map; leaves every master that no longer serves a slot."""
        async with self._lock:
            reply = await self._ask()
            if reply is None:
                return
            slots: SlotMap = []
            replicas: list[Address] = []
            for entry in reply:
                nodes = [(_text(n[0]), int(n[1])) for n in entry[2:]]
                slots.append((int(entry[0]), int(entry[1]), nodes[0]))
                replicas += nodes[1:]
            masters = {address for _, _, address in slots}
            before = {address for _, _, address in self.slots}
            self.slots, self._replicas = slots, replicas
            self.left -= masters
            for address in sorted(before - masters - self.left):
                await self._leave(address)

    async def _leave(self, address: Address) -> None:
        name = f"{address[0]}:{address[1]}"
        log.warning("Redis Cluster master %s was replaced by its replica: leaving it", name)
        self.left.add(address)
        clients = list(self._clients)
        for client in clients:
            client.nodes_manager.move_node_to_end_of_cached_nodes(name)
        await abort(c for c in list(self._connections) if _address(c) == address)
        for client in clients:
            if client.nodes_manager.slots_cache:  # a client that has read the map
                try:
                    await client.reload()
                except (RedisError, OSError) as exc:  # its next command reloads it
                    log.debug("Redis Cluster slot map not reloaded: %s", exc)

    def owner(self, key: str) -> Address | None:
        """The master of ``key``'s slot, as last read."""
        slot = key_slot(key.encode())
        for first, last, address in self.slots:
            if first <= slot <= last:
                return address
        return None

    async def aclose(self) -> None:
        """Stops following and closes whatever connection of this follower's clients is still
        open (called once they are closed): redis-py drops node objects on a slot-map reload
        without closing the connections they hold."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._drop_asking()
        await asyncio.gather(
            *(c.disconnect() for c in list(self._connections) if c.is_connected),
            return_exceptions=True,
        )
        self._lock = asyncio.Lock()  # a later connect may run in another event loop


def _address(connection: AbstractConnection) -> Address | None:
    host, port = getattr(connection, "host", None), getattr(connection, "port", None)
    return None if host is None or port is None else (str(host), int(port))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class FollowedCluster(RedisCluster):
    """redis-py's cluster client, followed by a :class:`ClusterFollower`.

    With ``slots``, redis-py's failing of a command when all ``max_connections`` of a node are
    busy becomes a wait for a free place, as the pool of a single server does (and, as it
    does, for at most ``socket_timeout`` seconds), so thousands of concurrent callers share a
    few connections."""

    def __init__(
        self, *args: Any, slots: int | None, follower: ClusterFollower | None, **kwargs: Any
    ) -> None:
        if slots is not None:
            kwargs["max_connections"] = slots
        super().__init__(*args, **kwargs)
        self._omniq_slots = asyncio.Semaphore(slots) if slots is not None else None
        self._omniq_wait: float | None = kwargs.get("socket_timeout")
        self._omniq_follower = follower
        if follower is not None:
            follower.follow(self)

    @contextlib.asynccontextmanager
    async def _place(self, what: object) -> Any:
        if self._omniq_slots is None:
            yield
            return
        try:
            async with asyncio.timeout(self._omniq_wait):
                await self._omniq_slots.acquire()
        except TimeoutError:
            raise RedisConnectionError(
                f"no connection free within {self._omniq_wait}s ({what!r} not sent)"
            ) from None
        try:
            yield
        finally:
            self._omniq_slots.release()

    def _node_objects(self) -> dict[int, ClusterNode]:
        manager = self.nodes_manager
        groups = {id(group): group for group in manager.slots_cache.values()}
        return {
            id(node): node
            for node in (
                *manager.nodes_cache.values(),
                *manager.startup_nodes.values(),
                *(node for group in groups.values() for node in group),
            )
        }

    async def _drop_replaced(self, before: dict[int, ClusterNode]) -> None:
        """Closes the connections of the node objects a slot-map reload dropped. redis-py
        7.4.1 keeps the node objects of its first map in its node cache but routes commands
        through new ones after each reload, and forgets those at the next one with their
        connections open ("Unclosed ClusterNode object" after every failover, sockets left
        to the garbage collector). Busy connections are closed when their command ends."""
        after = self._node_objects()
        for key, node in before.items():
            if key not in after:
                node.update_active_connections_for_reconnect()
                await node.disconnect_free_connections()

    async def initialize(self) -> FollowedCluster:
        if not self._initialize:
            return self
        before = self._node_objects()
        try:
            await super().initialize()
        finally:
            await self._drop_replaced(before)
        return self

    async def reload(self) -> None:
        """Reads the slot map again now (a master was left), unless the client is due for a
        reload anyway (its next command reloads it) or closed."""
        if self._initialize:
            return
        before = self._node_objects()
        try:
            await self.nodes_manager.initialize()
        finally:
            await self._drop_replaced(before)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._place(args[0]):
            return await super().execute_command(*args, **kwargs)

    async def together(self, key: str, *commands: tuple[Any, ...]) -> list[Any]:
        """``commands`` sent in one go on one connection of the master of ``key``'s slot, and
        their replies (an error reply as the exception, in its place): a write followed by a
        ``WAIT`` that must count that very write. redis-py's cluster client sends each
        command to a node of its choosing (``WAIT``, which names no key, to any node), so it
        could not do this.

        A MOVED reply to the first command reloads that slot and sends them again; an ASK sends
        them to the node named, after ASKING; a connection that fails marks the node as
        redis-py does (its next command reloads the slot map) and raises."""
        ttl = self.RedisClusterRequestTTL
        asking: ClusterNode | None = None
        while True:
            ttl -= 1
            if self._initialize:
                await self.initialize()
            node = asking or self.get_node_from_key(key)
            if node is None:
                raise RedisConnectionError(f"no node serves the slot of {key!r}")
            sent = [PipelineCommand(0, "ASKING")] if asking is not None else []
            sent += [PipelineCommand(i + 1, *command) for i, command in enumerate(commands)]
            asking = None
            async with self._place(commands[0][0]):
                try:
                    await node.execute_pipeline(sent)
                except (RedisConnectionError, RedisTimeoutError):
                    await self._lost(node)
                    raise
            replies = [command.result for command in sent[len(sent) - len(commands) :]]
            first = replies[0]
            if isinstance(first, RedisConnectionError | RedisTimeoutError):
                await self._lost(node)
                raise first
            if ttl > 0 and isinstance(first, MovedError):
                self.nodes_manager.move_slot(first)
                continue
            if ttl > 0 and isinstance(first, AskError):
                asking = self.nodes_manager.get_node(first.host, first.port)
                if asking is None:
                    self._initialize = True
                continue
            if ttl > 0 and isinstance(first, TryAgainError):
                await asyncio.sleep(0.05)
                continue
            return replies

    async def _lost(self, node: ClusterNode) -> None:
        """What redis-py does to a node whose connection failed: its connections are renewed,
        it is asked last for the slot map, and the map is reloaded before the next command."""
        node.update_active_connections_for_reconnect()
        await node.disconnect_free_connections()
        self.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
        self._initialize = True

    async def aclose(self) -> None:
        """Closes every connection, also those of the node objects that only the slot map
        holds (redis-py closes only its node cache, and nothing at all when an error left
        the client due for a reload; see :meth:`_drop_replaced`). redis-py also calls this
        itself to start afresh after CLUSTERDOWN, so the client stays followed (the
        follower holds it weakly and stops with its connection)."""
        nodes = self._node_objects()
        await super().aclose()
        await asyncio.gather(
            *(node.disconnect() for node in nodes.values()), return_exceptions=True
        )


def cluster_client(
    topology: Topology, slots: int | None, follower: ClusterFollower | None, **options: Any
) -> FollowedCluster:
    """A client of the Cluster; with ``slots``, one whose callers wait for a free connection
    (at most ``slots`` per node) instead of failing; with ``follower``, one that leaves a
    master as soon as the Cluster has replaced it."""
    merged = {**topology.redis_kwargs, **options}
    merged.pop("retry_on_timeout", None)  # RedisCluster retries timeouts itself
    url = topology.options.url
    if url is not None and not topology.nodes:
        client = FollowedCluster.from_url(url, slots=slots, follower=follower, **merged)
        assert isinstance(client, FollowedCluster)
        return client
    nodes = [ClusterNode(host, port) for host, port in topology.nodes]
    return FollowedCluster(startup_nodes=nodes, slots=slots, follower=follower, **merged)


async def _answers(host: str, port: int, kwargs: dict[str, Any]) -> bool:
    probe = _probe_client(host, port, kwargs, PROBE)
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


async def slot_node_client(
    topology: Topology, follower: ClusterFollower, key: str, where: str
) -> aioredis.Redis:
    """A plain client (no read timeout) of the node that holds ``key``'s slot now, as the
    follower has just read the slot map; its connections are the follower's (left with the
    master when it is replaced)."""
    await follower.refresh()
    address = follower.owner(key)
    if address is None:
        raise BackendUnavailable(f"no node of {where} serves channel {key!r}")
    # the connection options of the Cluster's nodes (building the client connects nothing)
    template = cluster_client(topology, None, None)
    node = ClusterNode(*address, **template.connection_kwargs)
    pool = aioredis.ConnectionPool(
        connection_class=follower.connection_class(node.connection_class),
        **{**node.connection_kwargs, "socket_timeout": None},
    )
    return aioredis.Redis.from_pool(pool)


__all__ = [
    "PROBE",
    "ClusterFollower",
    "FollowedCluster",
    "RedisCluster",
    "cluster_client",
    "rank_startup_nodes",
    "slot_node_client",
]

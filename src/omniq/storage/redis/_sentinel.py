"""Following a Sentinel-managed master across failovers.

redis-py's Sentinel client asks the sentinels where the master is at each connect; what it does
not do is leave the old master at once when Sentinel moves it. :class:`SentinelFollower` owns
the sentinels' manager, every pool of the master and the failover gate; :class:`SwitchWatcher`
listens to Sentinel's announcements and closes the gate during a failover, then drops the pools
at the switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import RedisError

from omniq._aio import idle
from omniq._redact import redact_text
from omniq.exceptions import BackendUnavailable
from omniq.storage.redis._conn_abort import abort

log = logging.getLogger("omniq.storage.redis")


class _SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel-managed connection asks the pool (so the sentinels) where the
    master is in ``connect()``; but a command that finds its connection closed reconnects
    through ``connect_check_health()`` (redis-py 7.4.1 ``send_packed_command``), which
    reuses the last address. After a failover dropped the connections, every retried command
    went back to the old master (and, if it hung, waited its socket timeout there). This one
    always reconnects through the pool."""

    _omniq_connecting = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._omniq_connecting or self.is_connected:
            await super().connect_check_health(
                check_health=check_health, retry_socket_connect=retry_socket_connect
            )
            return
        self._omniq_connecting = True
        try:
            # the pool's master address, then connect_to(), which comes back here to connect
            await self.connect()  # type: ignore[no-untyped-call]
        finally:
            self._omniq_connecting = False


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


class _GatedSentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool (it asks the sentinels where the master is at each connect)
    whose commands wait while a failover is under way (see :class:`SwitchWatcher`)."""

    _omniq_gate: asyncio.Event | None = None
    #: old master address -> the new one, from the switches the watcher heard
    _omniq_moved: dict[tuple[str, int], tuple[str, int]] | None = None

    async def get_master_address(self) -> Any:
        """The master as the sentinels see it, unless one that has not heard of the latest
        switch yet names the old master: right after a failover only the leading sentinel
        knows, and redis-py takes the first sentinel's answer, so it reconnected to the old
        master and wrote there until its demotion (redis-py 7.4.1 ``discover_master``)."""
        address = await self.sentinel_manager.discover_master(self.service_name)
        if self._omniq_moved:
            address = self._omniq_moved.get(tuple(address), address)
        if self.master_address != address:
            self.master_address = address
            await self.disconnect(inuse_connections=False)
        return address

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        gate = self._omniq_gate
        if gate is not None and not gate.is_set():
            await gate.wait()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class BlockingSentinelPool(_GatedSentinelPool, aioredis.BlockingConnectionPool):
    """The gated Sentinel pool with the waiting of redis-py's blocking pool: callers beyond
    ``max_connections`` wait."""


class SentinelFollower:
    """The Sentinel side of one connection: the sentinels (``nodes``), the clients of the
    master they name, the failover gate and the switches heard."""

    def __init__(
        self, nodes: list[tuple[str, int]], master: str, sentinel_kwargs: dict[str, Any]
    ) -> None:
        self.nodes = nodes
        self.master_name = master
        self.sentinel_kwargs = sentinel_kwargs
        self._sentinel: Sentinel | None = None
        #: every pool of the master, dropped at once when the master moves
        self._pools: weakref.WeakSet[aioredis.ConnectionPool] = weakref.WeakSet()
        self._watcher: SwitchWatcher | None = None
        #: cleared while Sentinel fails the master over: no command starts meanwhile
        self.gate = asyncio.Event()
        self.gate.set()
        #: master switches heard so far (a write that spanned one is run again, see Script)
        self.switches = 0
        #: old master address -> new one, as announced by the last switches (see the pool)
        self.moved: dict[tuple[str, int], tuple[str, int]] = {}

    def manager(self) -> Sentinel:
        """One :class:`Sentinel` per connection: every client of it asks the same sentinels."""
        if self._sentinel is None:
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                self.nodes, sentinel_kwargs=self.sentinel_kwargs
            )
        return self._sentinel

    def master(self, **options: Any) -> aioredis.Redis:
        """A client of the master whose pool follows a switch at once."""
        options.setdefault("connection_pool_class", _GatedSentinelPool)
        options.setdefault(
            "connection_class",
            _SentinelSSLConnection if options.get("ssl") else _SentinelConnection,
        )
        master: aioredis.Redis = self.manager().master_for(
            self.master_name, redis_class=aioredis.Redis, **options
        )
        pool = master.connection_pool
        assert isinstance(pool, _GatedSentinelPool)
        pool._omniq_gate = self.gate
        pool._omniq_moved = self.moved
        self._pools.add(pool)
        if self._watcher is None:
            self._watcher = SwitchWatcher(self)
        self._watcher.start()
        return master

    async def drop_pools(self) -> None:
        """Disconnects every connection to the master, busy ones included: the commands on
        them fail now and are retried, and each reconnect asks the sentinels where the master
        is. Without this, pooled connections kept writing to the old master until Sentinel
        demoted it (~10 s), and everything written there was discarded."""
        connections = [
            connection
            for pool in list(self._pools)
            for connection in (*pool._available_connections, *pool._in_use_connections)
        ]
        await abort(connections)

    async def check(self, where: str) -> None:
        """Asks each sentinel for the master, once, and raises :class:`BackendUnavailable` with
        one short reason per sentinel when none knows it (a wrong sentinel password is
        reported in well under a second, without redis-py's retries or its dump of
        connection objects)."""
        reasons = []
        for sentinel, (host, port) in zip(self.manager().sentinels, self.nodes, strict=True):
            try:
                masters = await sentinel.sentinel_masters()  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                reasons.append(f"{host}:{port}: {type(exc).__name__}: {redact_text(str(exc))}")
                continue
            state = masters.get(self.master_name)
            if state and state["is_master"] and not (state["is_sdown"] or state["is_odown"]):
                return
            reasons.append(f"{host}:{port}: no healthy master {self.master_name!r}")
        raise BackendUnavailable(f"cannot reach Redis at {where}: " + "; ".join(reasons))

    async def aclose(self) -> None:
        """Stops the watcher and closes the connections to the sentinels."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await watcher.stop()
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            for client in sentinel.sentinels:
                await client.aclose()


class SwitchWatcher:
    """Follows Sentinel's failover announcements for one master: a subscription on every
    sentinel (any one of them is enough).

    ``+failover-state-send-slaveof-noone`` comes from the leading sentinel just before it
    promotes the replica: from then on no command starts (the follower's gate is closed)
    until ``+switch-master`` names the new master; the pools are then dropped
    (:meth:`SentinelFollower.drop_pools`) and the gate opens. Without the gate, writes kept
    going to the old master between the promotion and the announcement, and without the drop
    until Sentinel demoted it (~10 s later); everything written there was discarded. A hung
    master (alive for TCP, answering nothing) is also left within a second of the promotion.
    A failover that never announces a switch (aborted) reopens the gate after ``HOLD``."""

    _RETRY = 1.0
    HOLD = 10.0

    def __init__(self, follower: SentinelFollower) -> None:
        self._follower = follower
        self._tasks: list[asyncio.Task[None]] = []
        self._last: str | None = None
        self._reopen: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._tasks:
            return
        kwargs = {k: v for k, v in self._follower.sentinel_kwargs.items() if k != "socket_timeout"}
        self._tasks = [
            asyncio.create_task(self._follow(host, port, kwargs), name="omniq-redis-sentinel")
            for host, port in self._follower.nodes
        ]

    async def _follow(self, host: str, port: int, kwargs: dict[str, Any]) -> None:
        while True:
            client = aioredis.Redis(host=host, port=port, **kwargs)
            try:
                pubsub = client.pubsub()
                await pubsub.subscribe(
                    "+switch-master", "+try-failover", "+failover-state-send-slaveof-noone"
                )
                await pubsub.psubscribe("-failover-abort-*")
                async for message in pubsub.listen():
                    if message["type"] in ("message", "pmessage"):
                        await self._heard(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a sentinel down: the others still announce
                log.debug("sentinel %s:%s subscription lost: %s", host, port, exc)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await idle(self._RETRY)

    async def _heard(self, channel: bytes | str, data: bytes | str) -> None:
        """One announcement: a failover begun or aborted, or the master switched."""
        name = self._follower.master_name
        fields = (data if isinstance(data, str) else data.decode()).split()
        channel = channel if isinstance(channel, bytes) else channel.encode()
        if channel != b"+switch-master":
            # "master <name> <ip> <port>" (+try-failover, -failover-abort-...) or
            # "slave <ip>:<port> <ip> <port> @ <master name> <ip> <port>"
            ours = (len(fields) >= 2 and fields[:2] == ["master", name]) or (
                len(fields) == 8 and fields[4] == "@" and fields[5] == name
            )
            if ours and channel.startswith(b"-failover-abort"):
                self._release()
            elif ours:
                self._hold()
            return
        # "<master name> <old ip> <old port> <new ip> <new port>"
        if len(fields) != 5 or fields[0] != name:
            return
        new = f"{fields[3]}:{fields[4]}"
        if new == self._last:
            return  # the other sentinels announce the same switch
        self._last = new
        moved = self._follower.moved
        moved.pop((fields[3], int(fields[4])), None)
        moved[(fields[1], int(fields[2]))] = (fields[3], int(fields[4]))
        log.warning(
            "Redis master %r moved from %s:%s to %s: reconnecting", name, fields[1], fields[2], new
        )
        self._follower.switches += 1
        await self._follower.drop_pools()
        self._release()

    def _hold(self) -> None:
        if self._reopen is not None:
            return  # another sentinel relayed the same failover
        log.warning(
            "Redis master %r is being failed over: commands wait", self._follower.master_name
        )
        self._follower.gate.clear()
        self._reopen = asyncio.get_running_loop().call_later(self.HOLD, self._release)

    def _release(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        self._follower.gate.set()

    async def stop(self) -> None:
        self._release()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["BlockingSentinelPool", "SentinelFollower", "SwitchWatcher"]

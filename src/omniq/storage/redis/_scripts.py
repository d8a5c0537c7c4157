"""Lua scripts: run by SHA with an EVAL fallback, and (``wait_replicas``) acknowledged only once
enough replicas have their write."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from omniq.exceptions import BackendUnavailable
from omniq.storage.redis._cluster import FollowedCluster
from omniq.storage.redis._sentinel import SentinelFollower, SwitchWatcher

log = logging.getLogger("omniq.storage.redis")

#: A single server's client (also for a Sentinel-managed master) or a Cluster's.
Client: TypeAlias = aioredis.Redis | RedisCluster
#: Seconds one WAIT may take before the write is run again (see :class:`Script`).
_WAIT_ATTEMPT = 1.0


@functools.cache
def lua(*names: str) -> str:
    """The text of a script: shared helper files first, then the script itself."""
    folder = resources.files("omniq.storage.redis").joinpath("lua")
    return "\n".join(folder.joinpath(f"{name}.lua").read_text("utf-8") for name in names)


class Script:
    """A Lua script run by EVALSHA, falling back to EVAL (which also caches it on that node)
    when the node answers NOSCRIPT.

    redis-py's own script objects answer NOSCRIPT with a SCRIPT LOAD on the nodes its node
    cache marks as primaries; after a Cluster failover (redis-py 7.4.1) that cache could still
    mark the promoted node a replica while its slot cache routed EVALSHA to it, so every script
    call on the slot failed forever. EVAL goes wherever EVALSHA went (the node of the first
    key), so the fallback cannot miss.

    With ``replicas`` (``wait_replicas``), the call is followed by ``WAIT replicas`` on the same
    connection and returns only once that many replicas have the write (on a Cluster, on a
    connection of the master of the keys' slot, see :meth:`FollowedCluster.together`). A WAIT that falls short
    (a replica promoted meanwhile, so the write went to a master about to be discarded) runs the
    script again, on whatever the master is by then, until ``deadline`` seconds have passed.
    ``merge`` combines the reply of an earlier run with the later one (the script may have
    stored everything the first time and answer "already there" the second).
    """

    def __init__(
        self,
        client: Client,
        source: str,
        *,
        replicas: int = 0,
        deadline: float | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
        where: str = "Redis",
        follower: SentinelFollower | None = None,
    ) -> None:
        self._client = client
        self._where = where
        self._follower = follower
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.replicas = replicas
        self._deadline = 30.0 if deadline is None else deadline
        self._merge = merge

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        if not self.replicas:
            return await self._run(keys, args)
        return await self._run_and_wait(keys, args)

    async def _run(self, keys: list[Any], args: list[Any]) -> Any:
        client: Any = self._client
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    async def _together(self, keys: list[Any], args: list[Any], *, by_sha: bool) -> tuple[Any, Any]:
        """The script and ``WAIT`` sent together on one connection (the WAIT counts the
        replicas that have this very write), and their replies, errors in place."""
        script = ("EVALSHA", self.sha) if by_sha else ("EVAL", self.source)
        run = (*script, len(keys), *keys, *args)
        wait = ("WAIT", self.replicas, int(_WAIT_ATTEMPT * 1000))
        client = self._client
        if isinstance(client, FollowedCluster):
            # on the master of the keys' slot: every key of a script shares that slot
            reply, acked = await client.together(keys[0], run, wait)
            return reply, acked
        async with client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*run)
            pipe.execute_command(*wait)
            reply, acked = await pipe.execute(raise_on_error=False)
        return reply, acked

    async def _run_and_wait(self, keys: list[Any], args: list[Any]) -> Any:
        deadline = time.monotonic() + self._deadline
        earlier: Any = None
        ran = False
        conn = self._follower
        while True:
            switches = conn.switches if conn is not None else 0
            reply, acked = await self._together(keys, args, by_sha=True)
            if isinstance(reply, NoScriptError):
                reply, acked = await self._together(keys, args, by_sha=False)
            if isinstance(acked, Exception):
                raise acked
            if isinstance(reply, Exception):
                raise reply
            if ran and self._merge is not None:
                reply = self._merge(earlier, reply)
            earlier, ran = reply, True
            if conn is not None:
                await asyncio.sleep(0)  # let the sentinel watcher read what has arrived
            if conn is not None and (conn.switches != switches or not conn.gate.is_set()):
                # a failover began while this write was under way: the replica that acknowledged
                # it may not be the one promoted, so it is written again on the new master
                log.warning("Redis: a write raced a failover; running it again on the new master")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SwitchWatcher.HOLD):
                        await conn.gate.wait()
                continue
            if int(acked) >= self.replicas:
                return reply
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"{self._where}: only {int(acked)} of wait_replicas={self.replicas} replicas "
                    f"acknowledged a write within {self._deadline:g}s"
                )
            log.warning(
                "Redis: %d of %d replicas acknowledged a write; running it again",
                int(acked),
                self.replicas,
            )


def register(
    client: Client,
    *names: str,
    replicas: int = 0,
    deadline: float | None = None,
    merge: Callable[[Any, Any], Any] | None = None,
    where: str = "Redis",
    follower: SentinelFollower | None = None,
) -> Script:
    """The :class:`Script` of the concatenated ``lua/<name>.lua`` files."""
    return Script(
        client,
        lua(*names),
        replicas=replicas,
        deadline=deadline,
        merge=merge,
        where=where,
        follower=follower,
    )


def flags_merge(first: list[Any], again: list[Any]) -> list[Any]:
    """Per item, the first run's answer unless it said 0 ("not done"): a script run again after
    a short WAIT finds what the first run stored and answers 0 for it."""
    return [a if a else b for a, b in zip(first, again, strict=True)]


__all__ = ["Client", "Script", "flags_merge", "lua", "register"]

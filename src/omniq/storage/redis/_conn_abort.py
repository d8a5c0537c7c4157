"""Dropping connections at once, busy ones included: what Sentinel's switch and a Cluster
master's replacement both do to the connections of the server that was left."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis.asyncio.connection import AbstractConnection


async def abort(connections: Iterable[AbstractConnection]) -> None:
    """Aborts each connection's socket, then lets redis-py forget it: a command waiting on one
    fails at once with a connection error (and is retried by its caller), and the next command
    reconnects. Abort, not close: a close waits to flush what a hung server no longer reads,
    and redis-py's own ``disconnect()`` then waited ``socket_connect_timeout`` per connection
    while the commands on them waited on."""
    dropped = list(connections)
    for connection in dropped:
        writer = getattr(connection, "_writer", None)
        if writer is not None:
            writer.transport.abort()
    await asyncio.gather(
        *(connection.disconnect(nowait=True) for connection in dropped),
        return_exceptions=True,
    )


__all__ = ["abort"]

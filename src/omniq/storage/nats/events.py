"""NATS event storage: one stream per project (``OMNIQ_<project>_EVENTS``), events as JSON
messages, kept for ``events_max_age`` seconds by the stream itself. Queries read the stream from
the first message at or after ``start_time`` through a short-lived consumer and filter in Python
(:meth:`EventQuery.matches`); a stream has no index on task ids."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from omniq._sync import SyncWrapper
from omniq.models.event import TaskEvent
from omniq.storage.base import BaseEventStorage, EventQuery
from omniq.storage.nats._conn import NATSComponent
from omniq.storage.nats._pipe import check

_BATCH = 1000
_DECODER = msgspec.json.Decoder(TaskEvent)


class AsyncNATSEventStorage(NATSComponent, BaseEventStorage):
    """Task events on a JetStream stream."""

    def __init__(self, **options: Any) -> None:
        for unused in ("queues", "lease_timeout", "secret_key", "allow_dill", "results_max_age"):
            options.pop(unused, None)
        super().__init__(**options)

    def __repr__(self) -> str:
        return f"AsyncNATSEventStorage(servers={self.where!r}, project_name={self.project_name!r})"

    async def _prepare(self) -> None:
        await self.ensure_stream(
            StreamConfig(
                name=self.names.events_stream,
                subjects=[self.names.events_subject],
                storage=StorageType.FILE,
                num_replicas=self.config.replicas,
                max_age=self.config.events_max_age,
            )
        )

    async def _log_events(self, events: list[TaskEvent]) -> None:
        subject = self.names.events_subject
        async with self.guard("logging events"):
            acks = await self.pipe.publish(
                [(subject, msgspec.json.encode(e), None) for e in events]
            )
            for ack in acks:
                check(ack)

    async def _read(self, start: datetime | None) -> list[tuple[int, TaskEvent]]:
        """(stream sequence, event) from ``start`` (or the first) to the last, in order."""
        js = self.jetstream
        info = await js.stream_info(self.names.events_stream)
        if not info.state.messages:
            return []
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_TIME if start else DeliverPolicy.ALL,
            # the stream's own clock stamps a message when it is stored, after the event was
            # made (and maybe on another host): start a minute early, filter exactly below
            opt_start_time=start - timedelta(seconds=60) if start else None,
            inactive_threshold=30.0,
        )
        sub = await js.pull_subscribe(
            self.names.events_subject, stream=self.names.events_stream, config=config
        )
        out: list[tuple[int, TaskEvent]] = []
        try:
            if not (await sub.consumer_info()).num_pending:
                return out
            while True:
                try:
                    msgs = await sub.fetch(_BATCH, timeout=1.0)
                except TimeoutError:  # nats.errors.TimeoutError is one too
                    break
                pending = 0
                for msg in msgs:
                    meta = msg.metadata
                    pending = meta.num_pending
                    with contextlib.suppress(msgspec.DecodeError):
                        out.append((meta.sequence.stream, _DECODER.decode(msg.data)))
                if pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return out

    async def _get_events(self, query: EventQuery) -> list[TaskEvent]:
        async with self.guard("reading events"):
            read = await self._read(query.start_time)
        found = [e for _, e in read if query.matches(e)]
        found.sort(key=lambda e: e.timestamp, reverse=query.descending)
        return found[query.offset : query.offset + query.limit]

    async def _cleanup_old_events(self, before: datetime) -> int:
        async with self.guard("deleting old events"):
            read = await self._read(None)
            old = [seq for seq, e in read if e.timestamp < before]
            if not old:
                return 0
            keep_from = next((seq for seq, e in read if e.timestamp >= before), read[-1][0] + 1)
            await self.jetstream.purge_stream(self.names.events_stream, seq=keep_from)
        return len(old)

    async def _health(self) -> dict[str, Any]:
        return {"servers": self.where, "stream": self.names.events_stream}


class NATSEventStorage(SyncWrapper, async_class=AsyncNATSEventStorage):
    """Blocking API of :class:`AsyncNATSEventStorage`."""


__all__ = ["AsyncNATSEventStorage", "NATSEventStorage"]

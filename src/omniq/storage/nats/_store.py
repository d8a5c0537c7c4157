"""What every part of the NATS task queue shares: the tasks bucket, the pull consumers, the task
records and their compare-and-set, acknowledgements and hints (see ``queue`` for the layout)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from omniq.exceptions import ConfigError
from omniq.models.task import Task
from omniq.storage.base import BaseResultStorage, BaseTaskQueue, lay_progress, record_view
from omniq.storage.nats._conn import Bucket, NATSComponent, key_token
from omniq.storage.nats._pipe import check
from omniq.storage.nats._puller import Puller
from omniq.storage.nats._records import RECORD_ENCODER, Hint, Record, read_record

#: ``change(record)`` returns the record to write (it may mutate its argument) or None.
Change = Callable[[Record], "Record | None"]
#: (record before, record written or None), or None when the task does not exist.
Changed = tuple[Record, "Record | None"] | None
#: A ``-NAK`` delay below which the hand-back is confirmed (a claim right after must find it).
CONFIRM_BELOW = 1.0


def task_key(task_id: str) -> str:
    return f"t.{key_token(task_id)}"


class TaskStore(NATSComponent, BaseTaskQueue):
    """The connection-level state of :class:`omniq.storage.nats.queue.AsyncNATSQueue`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._ack_wait = float(self.config.ack_wait or self.lease_timeout)
        if self._ack_wait < self.lease_timeout:
            raise ConfigError(
                f"ack_wait {self._ack_wait!r} is shorter than lease_timeout "
                f"{self.lease_timeout!r}: the server would hand running tasks to another worker"
            )
        self._consumers: dict[str, str] = {}
        self._bucket: Bucket | None = None
        self._puller: Puller | None = None
        #: claims made by this process: task id -> (claim, lease deadline in µs)
        self._local: dict[str, tuple[str, int]] = {}
        #: the record as this process last wrote it, to skip a read on completion
        self._known: dict[str, tuple[bytes, int]] = {}

    def create_result_storage(self) -> BaseResultStorage:
        from omniq.storage.nats.results import AsyncNATSResultStorage

        return AsyncNATSResultStorage(
            project_name=self.project_name,
            serializer=self.serializer,
            **{k: getattr(self.config, k) for k in self._OPTIONS},
        )

    # -- connection ------------------------------------------------------------------------
    async def _prepare(self) -> None:
        await self.ensure_work_stream()
        self._bucket = await self.ensure_bucket(
            self.names.tasks_bucket, self.config.task_record_ttl
        )
        assert self.nc is not None
        self._puller = Puller(
            self.nc, self.names.stream, self._ack_wait / 2, self.config.request_timeout
        )
        self._consumers.clear()

    async def _close(self) -> None:
        if self._puller is not None:
            await self._puller.stop()
            self._puller = None
        await super()._close()

    async def _on_reconnected(self) -> None:
        if self._puller is not None:
            self._puller.forget_requests()

    async def _consumer(self, queue: str) -> str:
        name = self._consumers.get(queue)
        if name is None:
            name = await self.ensure_consumer(queue, self._ack_wait)
            self._consumers[queue] = name
        return name

    @property
    def _kv(self) -> Bucket:
        if self._bucket is None:
            raise ConfigError("the NATS task queue is not connected")
        return self._bucket

    @property
    def puller(self) -> Puller:
        if self._puller is None:
            raise ConfigError("the NATS task queue is not connected")
        return self._puller

    # -- records ---------------------------------------------------------------------------
    def _view(self, task_id: str, record: Record) -> Task:
        """What readers see (``record_view``): a record whose state does not read (a status
        that is no status) as DEAD with the reason."""
        return record_view(
            self.serializer,
            record.payload,
            lambda: record.shell(task_id),
            task_id,
            lambda t: lay_progress(self.serializer, record.lay_over(t), record.progress),
        )

    async def _read_many(self, task_ids: Sequence[str]) -> list[Record | None]:
        found = await self._kv.get_many([task_key(i) for i in task_ids])
        return [None if f is None else read_record(f[0]) for f in found]

    async def _change_many(
        self, items: Sequence[tuple[str, Change]], *, known: bool = False
    ) -> list[Changed]:
        """Compare-and-set on many task records at once (see :meth:`Bucket.cas_many`).
        ``known``: start from the records as this process last wrote them, where it did."""
        before: list[Record | None] = [None] * len(items)

        def apply(index: int, value: bytes) -> bytes | None:
            before[index] = read_record(value)
            new = items[index][1](read_record(value))
            return None if new is None else RECORD_ENCODER.encode(new)

        if not items:
            return []
        ids = [task_id for task_id, _ in items]
        start = [self._known.get(i) for i in ids] if known else None
        async with self.guard(f"updating task {ids[0]}" if len(ids) == 1 else "updating tasks"):
            done = await self._kv.cas_many([task_key(i) for i in ids], apply, start)
        out: list[Changed] = []
        for task_id, first, result in zip(ids, before, done, strict=True):
            if result is None or first is None:
                out.append(None)
                continue
            _, written, revision = result
            if written is not None and task_id in self._local:
                self._known[task_id] = (written, revision)
            out.append((first, None if written is None else read_record(written)))
        return out

    async def _change(self, task_id: str, change: Change, *, known: bool = False) -> Changed:
        return (await self._change_many([(task_id, change)], known=known))[0]

    async def _records(self) -> list[tuple[str, Record]]:
        """Every task record, in key order (ids are time-ordered: roughly enqueue order)."""
        async with self.guard("listing tasks"):
            keys = sorted(await self._kv.keys("t.>"))
            values = await self._kv.get_many(keys)
        out = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            token = key[2:]
            task_id = bytes.fromhex(token[2:]).decode() if token.startswith("x.") else token
            out.append((task_id, read_record(value[0])))
        return out

    def _forget(self, task_id: str) -> None:
        self._local.pop(task_id, None)
        self._known.pop(task_id, None)

    # -- messages --------------------------------------------------------------------------
    async def _ack(self, reply: str | None, verb: bytes) -> None:
        """An acknowledgement verb, not waited for: where it is lost, the server delivers the
        message again after AckWait and whoever gets it settles it by the record."""
        if reply and self.nc is not None:
            async with self.guard("acknowledging"):
                await self.nc.publish(reply, verb)

    async def _nak(self, reply: str | None, delay: float = 0.0) -> None:
        """Hands a message back, due after ``delay`` seconds; confirmed when due (almost) at
        once, so that the very next claim finds it."""
        payload = b"-NAK"
        if delay > 0:
            payload += b' {"delay": %d}' % int(delay * 1e9)
        if delay >= CONFIRM_BELOW:
            await self._ack(reply, payload)
        elif reply:
            async with self.guard("handing a task back"):
                await self.pipe.requests([(reply, payload, None)])

    async def _hand_back(self, replies: Sequence[str]) -> None:
        """``-NAK`` on many messages, confirmed: each is claimable by the very next claim."""
        if replies:
            async with self.guard("handing tasks back"):
                await self.pipe.requests([(reply, b"-NAK", None) for reply in replies])

    async def _end_message(self, record: Record, retry_in: float = 0.0) -> None:
        """The message of a record that just left RUNNING: handed back when PENDING, spent
        otherwise (+TERM: never delivered again)."""
        if record.status == "pending":
            await self._nak(record.reply, retry_in)
        else:
            await self._ack(record.reply, b"+TERM")

    async def _hints(self, items: Sequence[tuple[str, Record, tuple[bytes, int] | None]]) -> None:
        """Publishes the messages that make PENDING tasks claimable: (task id, record, the record
        as written at its revision when the caller has it: see :class:`Hint`)."""
        if not items:
            return
        messages = []
        for task_id, record, written in items:
            hint = Hint(task_id, record.priority, record.eta_us or record.created_us)
            if written is not None:
                hint.record, hint.revision = written
            messages.append(
                (self.names.queue_subject(record.queue), RECORD_ENCODER.encode(hint), None)
            )
        async with self.guard("publishing tasks"):
            for ack in await self.pipe.publish(messages):
                check(ack)


__all__ = ["CONFIRM_BELOW", "Change", "Changed", "TaskStore", "task_key"]

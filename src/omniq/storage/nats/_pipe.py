"""JetStream requests sent together and answered together: the NATS backend's one write path.

nats-py's ``js.publish`` and ``kv.update`` make each request alone: a fresh reply token, a future,
a timer, a JSON parse into a dataclass, about 50 µs of CPU each. A claim of a hundred tasks, or an
acknowledgement batch, makes a hundred of them, so the client spent more CPU on that machinery than
on anything else. Here a batch of requests is published in one go (one write to the socket), every
reply comes back on one wildcard inbox subscription, and one future resolves when the last reply of
the batch is in: about 12 µs a request, and a batch costs one round trip however large it is.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
import nats.js.errors

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

#: One request: subject, payload, headers (or None).
Request = tuple[str, bytes, "dict[str, str] | None"]

#: Requests in flight at once: a larger batch goes in slices of this many, one after another, so
#: that the request timeout holds for each slice however large the whole is.
SLICE = 1000
#: JSStreamWrongLastSequenceErr (and its constant form): a compare-and-set lost to another writer.
WRONG_LAST_SEQUENCE = (10071, 10164)


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """The server's answer to a publish into a stream (``seq`` is a KV entry's revision)."""

    seq: int = 0
    duplicate: bool = False
    error: _Error | None = None


_ACK = msgspec.json.Decoder(PubAck)


#: Why a request waiting for its answer gave up before its timeout.
READER_GONE = (
    "the NATS client stopped reading (its tasks were cancelled, as asyncio.run does to every "
    "task when a program ends, or it is reconnecting): no answer can arrive"
)


class ReaderWatch:
    """Calls ``on_end`` once the client's reading task ends.

    Every answer arrives through that task (nats-py's ``_reading_task``). When a program ends,
    ``asyncio.run`` cancels it together with every other task, and a worker then handing back
    its running tasks waited the whole request timeout (5 s) for answers that could not come,
    before the program could exit; a reconnect replaces the task, and the answers of the old
    link are lost too. Without that attribute (another nats-py) nothing is watched and a
    request waits for its timeout as before."""

    def __init__(self, nc: Client, on_end: Callable[[], None]) -> None:
        self._nc = nc
        self._on_end = on_end
        self._watched: asyncio.Future[Any] | None = None

    def stopped(self) -> bool:
        """Whether the reading task has ended; else it is watched (a new one after a reconnect
        is watched from its first request)."""
        reader = getattr(self._nc, "_reading_task", None)
        if not isinstance(reader, asyncio.Future):
            return False
        if reader.done():
            return True
        if reader is not self._watched:
            self._watched = reader
            reader.add_done_callback(self._ended)
        return False

    def _ended(self, reader: asyncio.Future[Any]) -> None:
        if reader is self._watched:
            self._on_end()


class _Batch:
    __slots__ = ("done", "left", "replies")

    def __init__(self, size: int) -> None:
        self.replies: list[Msg | None] = [None] * size
        self.left = size
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Pipeline:
    """Request batches on one connection (see the module docstring)."""

    def __init__(self, nc: Client, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout
        self._prefix = nc.new_inbox()
        self._skip = len(self._prefix) + 1
        self._ids = itertools.count()
        self._waiting: dict[str, tuple[_Batch, int]] = {}
        self._sub: Subscription | None = None
        self._reader = ReaderWatch(nc, self._release_all)

    def _release_all(self) -> None:
        """The reading task ended: every waiting batch stops waiting (see ReaderWatch)."""
        for batch, _ in self._waiting.values():
            if not batch.done.done():
                batch.done.set_result(None)

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    async def _on_reply(self, msg: Msg) -> None:
        found = self._waiting.pop(msg.subject[self._skip :], None)
        if found is None:  # the answer to a batch that timed out
            return
        batch, index = found
        batch.replies[index] = msg
        batch.left -= 1
        if batch.left == 0 and not batch.done.done():
            batch.done.set_result(None)

    async def requests(self, items: Sequence[Request]) -> list[Msg]:
        """Sends every request, then waits for every reply (``TimeoutError`` after the
        connection's request timeout, naming how many are missing)."""
        if len(items) <= SLICE:
            return await self._slice(items)
        out: list[Msg] = []
        for start in range(0, len(items), SLICE):
            out.extend(await self._slice(items[start : start + SLICE]))
        return out

    async def _slice(self, items: Sequence[Request]) -> list[Msg]:
        if not items:
            return []
        if self._reader.stopped():
            raise ConnectionError(READER_GONE)
        batch = _Batch(len(items))
        tokens = []
        prefix = self._prefix
        publish = self._nc.publish
        try:
            for index, (subject, payload, headers) in enumerate(items):
                token = str(next(self._ids))
                tokens.append(token)
                self._waiting[token] = (batch, index)
                await publish(subject, payload, reply=f"{prefix}.{token}", headers=headers)
            # asyncio.timeout, not 3.11's wait_for: that one returns the result when a cancel
            # lands as the last reply comes in, and the cancelled task runs on
            async with asyncio.timeout(self._timeout):
                await batch.done
            if batch.left:
                raise ConnectionError(READER_GONE)
        except TimeoutError:
            raise TimeoutError(
                f"{batch.left} of {len(items)} JetStream requests got no answer "
                f"within {self._timeout:g} s"
            ) from None
        finally:
            for token in tokens:
                self._waiting.pop(token, None)
        return [reply for reply in batch.replies if reply is not None]

    async def publish(self, items: Sequence[Request]) -> list[PubAck]:
        """Publishes into streams and returns each acknowledgement, errors included (a lost
        compare-and-set is an answer, not an exception); no JetStream listening is one."""
        return [pub_ack(reply) for reply in await self.requests(items)]


def pub_ack(reply: Msg) -> PubAck:
    if not reply.data:
        status = reply.headers.get("Status") if reply.headers else None
        if status == "503":
            raise nats.errors.NoRespondersError
        raise nats.js.errors.APIError(code=int(status or 0), description="empty reply")
    return _ACK.decode(reply.data)


def check(ack: PubAck) -> int:
    """The sequence of a publish that must have succeeded; its error raised otherwise."""
    if ack.error is not None:
        raise nats.js.errors.APIError(
            code=ack.error.code, err_code=ack.error.err_code, description=ack.error.description
        )
    return ack.seq


def cas_lost(ack: PubAck) -> bool:
    return ack.error is not None and ack.error.err_code in WRONG_LAST_SEQUENCE


__all__ = ["Pipeline", "PubAck", "Request", "cas_lost", "check", "pub_ack"]

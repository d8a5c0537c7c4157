"""Pull requests to the queues' durable consumers.

nats-py's ``fetch`` owns one subscription per consumer and gives up its messages only to the
call that made the request. A worker serving several queues needs more: one wait over all of
them, and messages that arrive for an abandoned wait must not be lost. So the requests are sent
here by hand (``$JS.API.CONSUMER.MSG.NEXT``), each on its own inbox subscription (a delivery
carries its original subject, so only the subscription tells which request it answers); every
delivery lands in a per-consumer stash, and claims take from the stash first. A delivery is a
lease held by this process from the moment the server sends it; one that sat in the stash for
half the server's ack wait is left to expire and be delivered again rather than risk running it
after another worker got it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from typing import TYPE_CHECKING

import msgspec

from omniq.storage.nats._pipe import READER_GONE, ReaderWatch

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

#: Longest lingering pull request: a request lost in a reconnect is renewed after this.
LINGER = 5.0


class Delivery:
    """One delivered message: where to acknowledge it and what the ack subject tells."""

    __slots__ = ("arrived", "consumer", "data", "delivered", "reply", "seq")

    def __init__(self, reply: str, data: bytes, arrived: float) -> None:
        tokens = reply.split(".")
        # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens), or
        # the 12-token form with domain and account hash after ACK
        base = 2 if len(tokens) == 9 else 4
        self.reply = reply
        self.data = data
        self.arrived = arrived
        self.consumer = tokens[base + 1]
        self.delivered = int(tokens[base + 2])
        self.seq = int(tokens[base + 3])


class _Request:
    __slots__ = ("batch", "collect", "consumer", "done", "expires", "received", "sub")

    def __init__(
        self,
        consumer: str,
        batch: int,
        expires: float | None,
        collect: list[Delivery] | None = None,
    ) -> None:
        self.consumer = consumer
        self.batch = batch
        self.received = 0
        self.expires = expires
        #: where its deliveries go when not to the stash (recovery reads them itself)
        self.collect = collect
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sub: Subscription | None = None


class Puller:
    def __init__(self, nc: Client, stream: str, hold: float, request_timeout: float) -> None:
        self._nc = nc
        self._stream = stream
        self._hold = hold
        self._request_timeout = request_timeout
        self._inbox = nc.new_inbox()
        self._requests: set[_Request] = set()
        self._closing: set[asyncio.Future[None]] = set()
        self._lingering: dict[str, _Request] = {}
        self._stash: dict[str, deque[Delivery]] = {}
        self._arrived = asyncio.Event()
        self._ids = itertools.count()
        self._reader = ReaderWatch(nc, self._reader_ended)

    def _reader_ended(self) -> None:
        """No delivery or answer can arrive any more (see ReaderWatch): the pull requests
        waiting for an answer stop waiting."""
        for req in list(self._requests):
            if req.expires is None:
                self._end(req)

    async def stop(self) -> None:
        """Hands the stashed deliveries back at once (they were never claimed)."""
        for stash in self._stash.values():
            while stash:
                with contextlib.suppress(Exception):
                    await self._nc.publish(stash.popleft().reply, b"-NAK")
        for req in list(self._requests):
            self._end(req)
            if req.sub is not None:
                with contextlib.suppress(Exception):
                    await req.sub.unsubscribe()
        self._lingering.clear()

    def forget_requests(self) -> None:
        """After a reconnect: the server forgot every pull request of the old link, so none is
        lingering any more (the next claim pulls, the next wait asks again)."""
        for req in list(self._requests):
            self._end(req)

    async def _on_msg(self, req: _Request, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status:
            if status != "100":  # 404/408/409: the request is over
                self._end(req)
            return
        if not msg.reply:
            return
        delivery = Delivery(msg.reply, msg.data, time.monotonic())
        req.received += 1
        if req.collect is not None:
            req.collect.append(delivery)
        else:
            self._stash.setdefault(delivery.consumer, deque()).append(delivery)
            self._arrived.set()
        if req.received >= req.batch:
            self._end(req)

    def _end(self, req: _Request) -> None:
        if req not in self._requests:
            return
        self._requests.discard(req)
        if self._lingering.get(req.consumer) is req:
            del self._lingering[req.consumer]
        if not req.done.done():
            req.done.set_result(None)
        if req.sub is not None:
            # not from inside the callback: unsubscribing cancels the task that runs it
            closing = asyncio.ensure_future(self._unsubscribe(req.sub))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    @staticmethod
    async def _unsubscribe(sub: Subscription) -> None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    def take(self, consumer: str, limit: int) -> list[Delivery]:
        stash = self._stash.get(consumer)
        out: list[Delivery] = []
        if not stash:
            return out
        oldest = time.monotonic() - self._hold
        while stash and len(out) < limit:
            delivery = stash.popleft()
            if delivery.arrived >= oldest:
                out.append(delivery)
        return out

    def give_back(self, deliveries: list[Delivery]) -> None:
        """Deliveries fetched but not claimed: first in line for the next claim here."""
        for delivery in reversed(deliveries):
            self._stash.setdefault(delivery.consumer, deque()).appendleft(delivery)

    def stashed(self, consumers: list[str]) -> bool:
        return any(self._stash.get(c) for c in consumers)

    async def _request(self, consumer: str, body: dict[str, object], req: _Request) -> None:
        inbox = f"{self._inbox}.{next(self._ids)}"

        async def on_msg(msg: Msg) -> None:
            await self._on_msg(req, msg)

        req.sub = await self._nc.subscribe(inbox, cb=on_msg)
        self._requests.add(req)
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{consumer}",
            msgspec.json.encode(body),
            reply=inbox,
        )

    def _listening(self, consumer: str) -> bool:
        """Whether a lingering request on ``consumer`` is still open: the server pushes every
        message it has to an open request, so while one is, nothing else waits there."""
        req = self._lingering.get(consumer)
        return req is not None and req.expires is not None and req.expires > time.monotonic()

    async def fetch(self, consumer: str, limit: int) -> list[Delivery]:
        """Up to ``limit`` deliveries available now (the stash first), without waiting for new
        ones: one pull request for what the stash lacks, unless a lingering request is open
        (then the server has nothing more, and the round trip is saved: a task that woke a
        waiting worker starts at once)."""
        got = self.take(consumer, limit)
        if len(got) >= limit or self._listening(consumer):
            return got
        need = limit - len(got)
        return got + await self._pull(consumer, need, None)

    async def pull(self, consumer: str, limit: int) -> list[Delivery]:
        """Up to ``limit`` deliveries straight from the server, past the stash (recovery looks at
        what the server delivers again; the stash stays for this process's claims)."""
        return await self._pull(consumer, limit, [])

    async def _pull(
        self, consumer: str, limit: int, collect: list[Delivery] | None
    ) -> list[Delivery]:
        if self._reader.stopped():
            raise ConnectionError(READER_GONE)
        req = _Request(consumer, limit, None, collect)
        await self._request(consumer, {"batch": limit, "no_wait": True}, req)
        try:
            # asyncio.timeout, not 3.11's wait_for, which loses a cancel landing as the answer
            # comes in (see Pipeline._slice)
            async with asyncio.timeout(self._request_timeout):
                await req.done
        except TimeoutError:
            self._end(req)
            raise TimeoutError(f"no answer to a pull request on {consumer!r}") from None
        return collect if collect is not None else self.take(consumer, limit)

    async def wait(
        self,
        consumers: list[str],
        timeout: float,
        stop: asyncio.Event | None = None,
        batch: int = 1,
    ) -> None:
        """Returns once a delivery is stashed for any of ``consumers``, ``stop`` is set, or
        ``timeout`` passed. Each consumer keeps one lingering request for up to ``batch``
        messages (the free capacity of the claim that found nothing); a request still open when
        this returns may deliver later, into the stash, where the next claim finds it."""
        self._arrived.clear()
        if self.stashed(consumers):
            return
        now = time.monotonic()
        linger = min(max(timeout, 0.05), LINGER)
        for consumer in consumers:
            req = self._lingering.get(consumer)
            if req is not None and req.expires is not None and req.expires > now + 0.05:
                continue
            req = _Request(consumer, batch, now + linger)
            self._lingering[consumer] = req
            await self._request(
                consumer, {"batch": batch, "expires": int(linger * 1e9) - 1_000_000}, req
            )
        waiters = [asyncio.ensure_future(self._arrived.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=min(timeout, linger), return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()


__all__ = ["Delivery", "Puller"]

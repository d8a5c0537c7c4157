"""The Redis result store's batched GETs: a get queued just as every drainer ends is still sent
(it used to wait for ever: ended drainers counted until their done callbacks ran)."""

from __future__ import annotations

import asyncio

import pytest

from omniq.storage.redis import results


class _Client:
    """Answers an MGET a few loop turns later, as a server would."""

    def __init__(self) -> None:
        self.calls = 0

    async def mget(self, keys: list[str]) -> list[bytes]:
        self.calls += 1
        for _ in range(3):
            await asyncio.sleep(0)
        return [key.encode() for key in keys]


async def test_a_get_queued_as_every_drainer_ends_is_still_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(results, "_CHUNK", 1)  # one key per MGET: all four drainers busy
    client = _Client()
    batched = results._BatchedGet(lambda: client)  # type: ignore[arg-type, return-value]

    async def first_then_again() -> bytes | None:
        await batched.get("k0")
        # resumed in the turn after the four drainers ended, before their done callbacks
        return await batched.get("again")

    again, *others = await asyncio.wait_for(
        asyncio.gather(first_then_again(), *(batched.get(f"k{i}") for i in (1, 2, 3))), 5
    )
    assert again == b"again"
    assert others == [b"k1", b"k2", b"k3"]
    assert client.calls == 5
    assert not batched._drainers

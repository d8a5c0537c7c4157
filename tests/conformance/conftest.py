"""Fixtures of the conformance suite: every test runs once per entry of ``backends.BACKENDS``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

import pytest

from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue

from .backends import BACKENDS, BackendSpec, Stores
from .helpers import TIERS

MakeStores = Callable[..., Awaitable[Stores]]


def _param(spec: BackendSpec) -> object:
    # The `services` marker lets tests/conftest.py skip (or fail) before any fixture connects.
    marks = [pytest.mark.services(spec.service)] if spec.service else []
    return pytest.param(spec, id=spec.name, marks=marks)


@pytest.fixture(params=[_param(spec) for spec in BACKENDS])
def backend(request: pytest.FixtureRequest) -> BackendSpec:
    spec: BackendSpec = request.param
    return spec


@pytest.fixture
async def make_stores(backend: BackendSpec) -> AsyncIterator[MakeStores]:
    """``await make_stores(queues=[...])``: another isolated triple, closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(*, queues: Sequence[str] | None = None) -> Stores:
            return await stack.enter_async_context(backend.open(queues=queues))

        yield make


@pytest.fixture
async def stores(make_stores: MakeStores) -> Stores:
    return await make_stores()


@pytest.fixture
def queue(stores: Stores) -> BaseTaskQueue:
    return stores.queue


@pytest.fixture
def results(stores: Stores) -> BaseResultStorage:
    return stores.results


@pytest.fixture
def events(stores: Stores) -> BaseEventStorage:
    return stores.events


@pytest.fixture
async def tiered_queue(make_stores: MakeStores) -> BaseTaskQueue:
    """A task queue built with ``queues=["high", "medium", "low"]``."""
    return (await make_stores(queues=TIERS)).queue

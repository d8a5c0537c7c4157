"""Specification of the one sync-wrapper mechanism (ARCHITECTURE section 5)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from omniq._sync import SyncWrapper, run_sync, unwrap, wrap
from omniq.models.task import Task
from omniq.storage.memory import AsyncMemoryQueue, MemoryQueue


class GaugeError(Exception):
    """Raised by the async implementation; must reach sync callers unchanged."""

    def __init__(self, reading: int) -> None:
        super().__init__(f"bad reading {reading}")
        self.reading = reading


class AsyncProbe:
    def __init__(self, label: str) -> None:
        self.label = label

    async def describe(self) -> str:
        await anyio.lowlevel.checkpoint()
        return f"probe {self.label}"


class SyncProbe(SyncWrapper, async_class=AsyncProbe):
    pass


class AsyncGauge:
    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.probe = AsyncProbe("main")
        self.entered = 0
        self.exited: tuple[Any, ...] | None = None
        self.loop_thread = threading.get_ident()

    @classmethod
    async def open(cls, start: int) -> AsyncGauge:
        await anyio.lowlevel.checkpoint()
        return cls(start)

    @classmethod
    def zero(cls) -> AsyncGauge:
        return cls(0)

    @staticmethod
    async def version() -> str:
        return "1.0"

    @property
    def doubled(self) -> int:
        return self.value * 2

    async def add(self, amount: int) -> int:
        await anyio.lowlevel.checkpoint()
        self.value += amount
        return self.value

    async def read(self) -> int:
        return self.value

    async def explode(self) -> None:
        await anyio.lowlevel.checkpoint()
        raise GaugeError(self.value)

    async def inspect(self, probe: Any) -> tuple[bool, bool]:
        return isinstance(probe, AsyncProbe), probe is self.probe

    async def probes(self) -> list[AsyncProbe]:
        return [self.probe]

    async def call_sync_from_the_loop(self) -> int:
        result: Any = wrap(self).add(1)
        return int(result)

    async def where(self) -> int:
        return threading.get_ident()

    async def __aenter__(self) -> AsyncGauge:
        self.entered += 1
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.exited = exc


class SyncGauge(SyncWrapper, async_class=AsyncGauge):
    pass


# The generated members (``__enter__``, classmethods) are invisible to type checkers, hence the
# ``type: ignore[attr-defined]`` comments below.


ASYNC_METHODS = ["add", "read", "explode", "inspect", "probes", "call_sync_from_the_loop", "where"]


@pytest.mark.parametrize("name", ASYNC_METHODS)
def test_every_coroutine_method_exists_under_its_name_and_with_a_sync_suffix(name: str) -> None:
    assert getattr(SyncGauge, name) is getattr(SyncGauge, f"{name}_sync")
    assert not hasattr(AsyncGauge, f"{name}_sync")


def test_a_sync_method_returns_the_coroutine_result() -> None:
    gauge = SyncGauge(10)

    assert gauge.add(5) == 15
    assert gauge.add_sync(5) == 20
    assert gauge.read() == 20


def test_constructor_arguments_reach_the_async_class() -> None:
    gauge = SyncGauge(start=3)

    assert isinstance(gauge.async_, AsyncGauge)
    assert gauge.async_.value == 3


def test_coroutines_run_on_one_background_loop_thread() -> None:
    gauge = SyncGauge()

    assert gauge.where() != threading.get_ident()
    assert gauge.where() == SyncGauge().where()


def test_an_exception_keeps_its_exact_type_and_attributes() -> None:
    gauge = SyncGauge(7)

    with pytest.raises(GaugeError, match="bad reading 7") as excinfo:
        gauge.explode()

    assert type(excinfo.value) is GaugeError
    assert excinfo.value.reading == 7


def test_an_exception_traceback_includes_the_async_frame() -> None:
    with pytest.raises(GaugeError) as excinfo:
        SyncGauge().explode()

    frames = [frame.name for frame in traceback.extract_tb(excinfo.value.__traceback__)]
    assert "explode" in frames


def test_with_block_calls_aenter_and_aexit() -> None:
    gauge = SyncGauge()

    with gauge as entered:  # type: ignore[attr-defined]
        assert entered is gauge
        assert gauge.async_.entered == 1
        assert gauge.async_.exited is None

    assert gauge.async_.exited == (None, None, None)


def test_with_block_passes_the_exception_to_aexit() -> None:
    gauge = SyncGauge()

    with pytest.raises(GaugeError), gauge:  # type: ignore[attr-defined]
        gauge.explode()

    exited = gauge.async_.exited
    assert exited is not None
    assert exited[0] is GaugeError


def test_an_async_classmethod_factory_returns_a_sync_object() -> None:
    gauge = SyncGauge.open(4)  # type: ignore[attr-defined]

    assert type(gauge) is SyncGauge
    assert gauge.read() == 4


def test_an_async_classmethod_factory_is_also_reachable_with_a_sync_suffix() -> None:
    gauge = SyncGauge.open_sync(4)  # type: ignore[attr-defined]

    assert type(gauge) is SyncGauge


def test_a_plain_classmethod_factory_returns_a_sync_object() -> None:
    gauge = SyncGauge.zero()  # type: ignore[attr-defined]

    assert type(gauge) is SyncGauge
    assert gauge.read() == 0


def test_an_async_staticmethod_is_run_to_completion() -> None:
    version = SyncGauge.version()  # type: ignore[attr-defined]
    if inspect.iscoroutine(version):
        version.close()  # not run: keep the failure free of "never awaited" noise

    assert version == "1.0"


def test_a_property_reads_through_to_the_async_object() -> None:
    gauge = SyncGauge(21)

    assert gauge.doubled == 42
    gauge.add(1)
    assert gauge.doubled == 44


def test_a_plain_attribute_reads_and_writes_through() -> None:
    gauge = SyncGauge(1)

    gauge.value = 9

    assert gauge.async_.value == 9
    assert gauge.value == 9


def test_an_attribute_holding_a_wrapped_async_class_comes_back_wrapped() -> None:
    gauge = SyncGauge()

    probe = gauge.probe

    assert isinstance(probe, SyncProbe)
    assert probe.describe() == "probe main"


def test_the_same_async_object_is_always_wrapped_by_the_same_sync_object() -> None:
    gauge = SyncGauge()

    assert gauge.probe is gauge.probe
    assert wrap(gauge.async_) is gauge


def test_a_list_of_async_objects_returned_by_a_method_comes_back_wrapped() -> None:
    (probe,) = SyncGauge().probes()

    assert isinstance(probe, SyncProbe)


def test_a_sync_wrapper_argument_reaches_async_code_as_the_async_object() -> None:
    gauge = SyncGauge()

    assert gauge.inspect(gauge.probe) == (True, True)
    assert gauge.inspect(probe=gauge.probe) == (True, True)


def test_unwrap_and_wrap_are_inverse() -> None:
    probe = SyncProbe("x")

    assert isinstance(unwrap(probe), AsyncProbe)
    assert wrap(unwrap(probe)) is probe
    assert unwrap([probe, 1]) == [probe.async_, 1]
    assert wrap(5) == 5


def test_calls_from_twenty_threads_at_once_all_complete() -> None:
    gauge = SyncGauge()
    barrier = threading.Barrier(20)

    def hammer(_: int) -> None:
        barrier.wait()
        for _ in range(50):
            gauge.add(1)

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(hammer, range(20)))

    assert gauge.read() == 1000


@pytest.mark.timeout(10)
def test_a_sync_call_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    gauge = SyncGauge()

    with pytest.raises(RuntimeError, match="Async"):
        gauge.call_sync_from_the_loop()


@pytest.mark.timeout(10)
def test_run_sync_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    gauge = SyncGauge(1)

    async def nested() -> int:
        value: int = run_sync(gauge.async_.read)
        return value

    with pytest.raises(RuntimeError, match="own event loop"):
        run_sync(nested)


async def test_a_sync_object_works_while_another_event_loop_runs_in_the_caller() -> None:
    gauge = SyncGauge(2)

    assert gauge.add(3) == 5


# -- the real memory backend ------------------------------------------------------------------


def test_memory_queue_is_the_sync_twin_of_async_memory_queue() -> None:
    queue = MemoryQueue()

    assert isinstance(queue.async_, AsyncMemoryQueue)


def test_memory_queue_enqueue_and_queue_size() -> None:
    queue = MemoryQueue()

    first = queue.enqueue("os.path:join", args=("a", "b"))
    second = queue.enqueue_sync("os.path:join", args=("c", "d"))

    assert isinstance(first, str)
    assert first != second
    assert queue.get_queue_size("default") == 2
    assert queue.get_queue_size_sync("default") == 2


def test_memory_queue_works_as_a_context_manager() -> None:
    with MemoryQueue() as queue:  # type: ignore[attr-defined]
        assert isinstance(queue, MemoryQueue)
        task_id = queue.enqueue_sync(Task(func="my_function", args=(1, 2, 3), queue_name="default"))
        assert queue.get_queue_size_sync("default") == 1
        stored = queue.get_task_sync(task_id)
        assert stored is not None
        assert stored.args == (1, 2, 3)


def test_run_sync_runs_a_plain_function_inside_a_task_of_the_loop() -> None:
    def current() -> bool:
        return asyncio.current_task() is not None

    assert run_sync(current) is True


def test_run_sync_hands_the_caller_s_context_variables_to_the_call() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read() -> str:
        return var.get()

    token = var.set("from the caller")
    try:
        assert run_sync(read) == "from the caller"
    finally:
        var.reset(token)


def test_run_sync_raises_a_base_exception_of_the_call() -> None:
    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sync(interrupted)
    assert run_sync(asyncio.sleep, 0, "still serving") == "still serving"

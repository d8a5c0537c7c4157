"""Dependencies, workflows (chain, group, chord, graphs) and callbacks, end to end with a real
worker, on every backend of the conformance suite. The storage-level dependency semantics are
proven per backend in tests/conformance/test_dependencies.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from omniq import (
    AsyncOmniQ,
    CallbackManager,
    OmniQ,
    TaskCancelledError,
    TaskDependencyGraph,
    TaskOutcome,
    TaskStatus,
    chain,
    chord,
    group,
    sig,
)
from omniq.backend import create_backend
from omniq.exceptions import FunctionNotFound, TaskNotFound
from omniq.models.event import EventType
from tests import tasks_fixture as tf
from tests.conformance.backends import BACKENDS, BackendSpec

WAIT = 30.0


def _param(spec: BackendSpec) -> object:
    marks = [pytest.mark.services(spec.service)] if spec.service else []
    return pytest.param(spec, id=spec.name, marks=marks)


#: one backend of each kind: the Cluster and Sentinel variants of Redis prove the same storage
#: semantics in the conformance suite, at a fraction of this module's cost
_KINDS = ("memory", "sqlite", "postgres", "redis")


@pytest.fixture(params=[_param(spec) for spec in BACKENDS if spec.name in _KINDS])
async def oq(request: pytest.FixtureRequest) -> AsyncIterator[AsyncOmniQ]:
    """An app on each backend of the conformance suite, isolated the same way, with a worker."""
    tf.reset()
    spec: BackendSpec = request.param
    async with spec.open() as stores:
        app = AsyncOmniQ(
            "wf", task_queue=stores.queue, result_store=stores.results, event_store=stores.events
        )
        async with app:
            await app.start_worker(concurrency=4)
            yield app
            await app.stop_worker()


async def test_a_dependent_runs_after_its_dependency_with_its_result(oq: AsyncOmniQ) -> None:
    first = await oq.enqueue(tf.add, args=(2, 3))
    second = await oq.enqueue(tf.multiply, args=(10,), depends_on=[first], pass_results=True)

    assert await oq.get_result(second, timeout=WAIT) == 50


async def test_chain_passes_each_result_to_the_next_step(oq: AsyncOmniQ) -> None:
    run = await oq.submit(chain(sig(tf.add, 1, 2), sig(tf.multiply, 10), sig(tf.prefixed, "=")))

    assert len(run.ids) == 3
    assert await oq.get_result(run.result_id, timeout=WAIT) == "=30"


async def test_group_runs_in_parallel_and_gathers_results_in_order(oq: AsyncOmniQ) -> None:
    run = await oq.group(*(sig(tf.square, i) for i in range(6)))

    assert run.result_id is None
    assert await oq.get_results(run.result_ids, timeout=WAIT) == [0, 1, 4, 9, 16, 25]


async def test_chord_calls_the_body_with_all_results(oq: AsyncOmniQ) -> None:
    run = await oq.chord([sig(tf.square, i) for i in range(1, 5)], sig(tf.total))

    assert await oq.get_result(run.result_id, timeout=WAIT) == 1 + 4 + 9 + 16


async def test_workflow_objects_compose_and_nest(oq: AsyncOmniQ) -> None:
    # a chain that fans out into a group and back in: add -> (square, +1, x3) -> total
    flow = chain(
        sig(tf.add, 1, 2),
        group(sig(tf.square), sig(tf.add, 1), sig(tf.multiply, 3)),
        sig(tf.total),
    )
    run = await oq.submit(flow)
    assert len(run.ids) == 5
    assert await oq.get_result(run.result_id, timeout=WAIT) == 9 + 4 + 9

    run = await oq.submit(chord(group(sig(tf.add, 1, 1), sig(tf.add, 2, 2)), sig(tf.total)))
    assert await oq.get_result(run.result_id, timeout=WAIT) == 6


async def test_an_immutable_step_ignores_the_previous_result(oq: AsyncOmniQ) -> None:
    from omniq.workflows import Signature

    run = await oq.chain(sig(tf.add, 1, 2), Signature(tf.add, (10, 20), immutable=True))
    assert await oq.get_result(run.result_id, timeout=WAIT) == 30


async def test_a_failed_step_cancels_the_rest_of_the_chain_with_the_reason(
    oq: AsyncOmniQ,
) -> None:
    run = await oq.submit(chain(sig(tf.boom, "bad input").set(max_retries=0), sig(tf.square)))

    with pytest.raises(TaskCancelledError, match=r"dependency .* ended dead"):
        await oq.get_result(run.result_id, timeout=WAIT)
    task = await oq.get_task(run.result_id or "")
    assert task is not None
    assert task.status is TaskStatus.CANCELLED
    events = await oq.get_events(run.result_id, EventType.DEPENDENCY_FAILED)
    assert len(events) == 1


async def test_run_anyway_runs_after_a_failure_and_gets_none_for_it(oq: AsyncOmniQ) -> None:
    bad = await oq.enqueue(tf.boom, max_retries=0)
    after = await oq.enqueue(
        tf.prefixed,
        args=("got ",),
        depends_on=[bad],
        dependency_policy="run_anyway",
        pass_results=True,
    )

    assert await oq.get_result(after, timeout=WAIT) == "got None"


async def test_a_graph_runs_in_dependency_order(oq: AsyncOmniQ) -> None:
    graph = TaskDependencyGraph()
    a = graph.add_task(tf.add, args=(1, 1))
    b = graph.add_task(tf.square, depends_on=[a], pass_results=True)
    c = graph.add_task(tf.multiply, args=(3,), depends_on=[a], pass_results=True)
    d = graph.add_task(tf.total, depends_on=[b, c], pass_results=True)

    run = await oq.submit(graph)

    assert run.result_ids == [d]
    assert await oq.get_result(d, timeout=WAIT) == 4 + 6


async def test_enqueue_with_an_unknown_dependency_fails_before_storing(oq: AsyncOmniQ) -> None:
    with pytest.raises(TaskNotFound, match="missing-id"):
        await oq.enqueue(tf.add, args=(1, 2), depends_on=["missing-id"], task_id="never")
    assert await oq.get_task("never") is None


def test_pass_results_without_dependencies_is_refused() -> None:
    with OmniQ.from_backend(create_backend("memory")) as app:
        with pytest.raises(ValueError, match="pass_results needs depends_on"):
            app.enqueue(tf.add, args=(1, 2), pass_results=True)
        with pytest.raises(ValueError, match="dependency_policy"):
            app.enqueue(tf.add, args=(1, 2), dependency_policy="sometimes")


def test_graph_cycles_are_named() -> None:
    graph = TaskDependencyGraph()
    a = graph.add_task(tf.add, args=(1, 2), task_id="a")
    b = graph.add_task(tf.add, args=(1, 2), task_id="b", depends_on=[a])
    with pytest.raises(ValueError, match="a -> b -> a"):
        graph.add_dependency(a, b)
    assert graph.topological_order() == ["a", "b"]


def test_workflows_run_from_the_sync_api(tmp_path: Path) -> None:
    tf.reset()
    with OmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path / 'sync.db'}")) as app:
        app.start_worker(concurrency=2)
        try:
            run = app.chain(sig(tf.add, 2, 2), sig(tf.square))
            assert app.get_result(run.result_id, timeout=WAIT) == 16
            run = app.chord([sig(tf.add, i, i) for i in range(3)], sig(tf.total))
            assert app.get_result(run.result_id, timeout=WAIT) == 0 + 2 + 4
        finally:
            app.stop_worker()


# -- callbacks ---------------------------------------------------------------------------------
async def _settled(predicate: object, timeout: float = WAIT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "callbacks did not run in time"
        await asyncio.sleep(0.01)


async def test_task_callbacks_run_on_success_and_on_complete(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(
        tf.add, args=(2, 5), on_success=tf.record_outcome, on_complete=tf.record_outcome
    )
    await oq.get_result(tid, timeout=WAIT)

    await _settled(lambda: len(tf.outcomes) == 2)
    assert sorted(tf.outcomes) == [("complete", tid, 7), ("success", tid, 7)]


async def test_retry_and_failure_callbacks_see_the_error(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(
        tf.boom,
        max_retries=1,
        retry_delay=0.01,
        on_retry=tf.record_outcome,
        on_failure=tf.record_outcome,
    )
    await oq.get_task_result(tid, timeout=WAIT)

    await _settled(lambda: len(tf.outcomes) == 2)
    assert tf.outcomes == [("retry", tid, "ValueError"), ("failure", tid, "ValueError")]


async def test_a_lambda_callback_travels_with_dill_on_a_local_backend(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(
        tf.add, args=(1, 1), on_success=lambda o: tf.record_outcome(o)
    )  # no importable name: the task travels as dill
    assert await oq.get_result(tid, timeout=WAIT) == 2
    await _settled(lambda: tf.outcomes == [("success", tid, 2)])


async def test_a_failing_callback_is_counted_and_never_fails_the_task(oq: AsyncOmniQ) -> None:
    tid = await oq.enqueue(tf.add, args=(1, 2), on_success=tf.broken_callback)

    assert await oq.get_result(tid, timeout=WAIT) == 3
    assert oq.worker is not None
    worker = oq.worker
    await _settled(lambda: worker.stats.callback_errors == 1)
    task = await oq.get_task(tid)
    assert task is not None
    assert task.status is TaskStatus.SUCCESS


async def test_callback_manager_hooks_see_every_task(tmp_path: Path) -> None:
    tf.reset()
    hooks = CallbackManager()
    seen: list[tuple[str, str]] = []

    @hooks.on("success")
    async def on_success(outcome: TaskOutcome) -> None:
        seen.append(("success", outcome.task_id))

    @hooks.on_failure
    def on_failure(outcome: TaskOutcome) -> None:
        seen.append(("failure", outcome.task_id))

    async with AsyncOmniQ.from_backend(create_backend("memory")) as app:
        app.callbacks = hooks
        await app.start_worker()
        ok = await app.enqueue(tf.add, args=(1, 2))
        bad = await app.enqueue(tf.boom, max_retries=0)
        await app.get_task_result(ok, timeout=WAIT)
        await app.get_task_result(bad, timeout=WAIT)
        await _settled(lambda: len(seen) == 2)
        await app.stop_worker()
    assert sorted(seen) == sorted([("success", ok), ("failure", bad)])


def test_unknown_callback_names_and_events_are_refused() -> None:
    hooks = CallbackManager()
    with pytest.raises(ValueError, match="sometime"):
        hooks.on("sometime", print)
    with (
        OmniQ.from_backend(create_backend("memory")) as app,
        pytest.raises(FunctionNotFound, match="no_such_module"),
    ):
        app.enqueue(tf.add, args=(1, 2), on_success="no_such_module:fn")

"""Bulk enqueue, queue sizes, statistics, listing, purging and health."""

from __future__ import annotations

from typing import Any

import pytest

from omniq.exceptions import QueueNameError, SerializationError, TaskNotFound
from omniq.models.task import Task, TaskStatus
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue

from .helpers import FUNC, claim, claim_token, ms_now, nonzero_stats


async def test_enqueue_many_returns_the_ids_in_order(queue: BaseTaskQueue) -> None:
    tasks = [Task(func=FUNC, args=(i, i)) for i in range(5)]

    ids = await queue.enqueue_many(tasks)

    assert ids == [t.id for t in tasks]
    for task in tasks:
        stored = await queue.get_task(task.id)
        assert stored is not None
        assert stored.args == task.args


async def test_enqueue_many_of_nothing_returns_no_ids(queue: BaseTaskQueue) -> None:
    assert await queue.enqueue_many([]) == []


async def test_enqueue_many_skips_ids_that_exist(queue: BaseTaskQueue) -> None:
    first = Task(func=FUNC, args=(1, 1))
    await queue.enqueue(first)

    ids = await queue.enqueue_many([Task(func=FUNC, args=(9, 9), id=first.id), Task(func=FUNC)])

    assert ids[0] == first.id
    assert await queue.get_queue_size() == 2
    stored = await queue.get_task(first.id)
    assert stored is not None
    assert stored.args == (1, 1)


async def test_a_batch_larger_than_a_backend_call_is_stored_whole_and_once(
    queue: BaseTaskQueue,
) -> None:
    """Redis sends more than 1,000 tasks in pieces and commits them together: every task is
    stored, dependencies that cross pieces hold, and the same batch again changes nothing."""
    tasks = [Task(func=FUNC, args=(i, i)) for i in range(2_345)]
    tasks[3].depends_on = [tasks[2_300].id]
    tasks[1_500].depends_on = [tasks[4].id]

    assert await queue.enqueue_many(tasks) == [t.id for t in tasks]
    assert await queue.enqueue_many(tasks) == [t.id for t in tasks]

    assert await queue.get_queue_size() == len(tasks) - 2
    for i in (0, 999, 1_000, 1_999, 2_000, 2_344):
        stored = await queue.get_task(tasks[i].id)
        assert stored is not None
        assert stored.args == (i, i)
    for i in (3, 1_500):
        stored = await queue.get_task(tasks[i].id)
        assert stored is not None
        assert stored.status is TaskStatus.WAITING


async def test_enqueue_many_with_an_unserializable_task_stores_none_of_them(
    queue: BaseTaskQueue,
) -> None:
    good = Task(func=FUNC, args=(1, 2))
    bad = Task(func=FUNC, kwargs={"rows": (i for i in range(3))})

    with pytest.raises(SerializationError):
        await queue.enqueue_many([good, bad])

    assert await queue.list_tasks() == []


async def test_enqueue_many_with_a_task_for_an_unknown_queue_stores_none_of_them(
    tiered_queue: BaseTaskQueue,
) -> None:
    with pytest.raises(QueueNameError):
        await tiered_queue.enqueue_many(
            [Task(func=FUNC, queue_name="high"), Task(func=FUNC, queue_name="urgent")]
        )

    assert await tiered_queue.list_tasks() == []


async def test_get_queue_size_counts_the_waiting_tasks_of_that_queue(
    queue: BaseTaskQueue,
) -> None:
    await queue.enqueue(FUNC)
    await queue.enqueue(FUNC, run_in=60)  # delayed tasks wait too
    await queue.enqueue(FUNC)
    await claim(queue, lease=5)  # running: no longer waiting
    await queue.enqueue(FUNC, queue_name="other")

    assert await queue.get_queue_size() == 2
    assert await queue.get_queue_size("default") == 2
    assert await queue.get_queue_size("other") == 1
    assert await queue.get_queue_size("empty") == 0


async def test_stats_counts_tasks_by_queue_and_status(queue: BaseTaskQueue) -> None:
    for _ in range(4):
        await queue.enqueue(FUNC)
    done = await claim(queue, lease=5)
    await queue.complete(done.id, claim_token(done))
    await claim(queue, lease=5)
    await queue.enqueue(FUNC, queue_name="other")
    failed = await claim(queue, "other", lease=5)
    await queue.fail(failed.id, claim_token(failed), error_type="ValueError")

    assert nonzero_stats(await queue.stats()) == {
        "default": {"pending": 2, "running": 1, "success": 1},
        "other": {"dead": 1},
    }


async def test_stats_of_an_empty_queue_is_empty(queue: BaseTaskQueue) -> None:
    assert nonzero_stats(await queue.stats()) == {}


async def test_list_tasks_lists_every_task(queue: BaseTaskQueue) -> None:
    ids = [await queue.enqueue(FUNC, queue_name=q) for q in ("a", "b", "a")]

    assert sorted(t.id for t in await queue.list_tasks()) == sorted(ids)


async def test_list_tasks_filters_by_queue(queue: BaseTaskQueue) -> None:
    in_a = [await queue.enqueue(FUNC, queue_name="a") for _ in range(2)]
    await queue.enqueue(FUNC, queue_name="b")

    assert sorted(t.id for t in await queue.list_tasks(queue="a")) == sorted(in_a)


async def test_list_tasks_filters_by_status(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    await queue.enqueue(FUNC)
    running = await claim(queue, lease=5)

    assert [t.id for t in await queue.list_tasks(status=TaskStatus.RUNNING)] == [running.id]
    assert len(await queue.list_tasks(status="pending")) == 1


async def test_list_tasks_filters_by_queue_and_status(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC, queue_name="a")
    await queue.enqueue(FUNC, queue_name="b")
    wanted = await queue.enqueue(FUNC, queue_name="b")
    await claim(queue, "b", lease=5)

    found = await queue.list_tasks(queue="b", status=TaskStatus.PENDING)
    assert [t.id for t in found] == [wanted]


async def test_list_tasks_pages_with_limit_and_offset(queue: BaseTaskQueue) -> None:
    for i in range(5):
        await queue.enqueue(FUNC, args=(i, i))
    everything = [t.id for t in await queue.list_tasks()]

    pages = [await queue.list_tasks(limit=2, offset=offset) for offset in (0, 2, 4)]

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [t.id for page in pages for t in page] == everything


async def _pages(store: BaseTaskQueue, size: int, **filters: Any) -> list[list[str]]:
    """Every page of a listing, each read from the cursor of the one before."""
    pages: list[list[str]] = []
    after = None
    while True:
        page = [t.id for t in await store.list_tasks(limit=size, after=after, **filters)]
        if not page:
            return pages
        pages.append(page)
        after = page[-1]


async def test_list_tasks_pages_by_cursor_in_either_order(queue: BaseTaskQueue) -> None:
    for i in range(7):
        await queue.enqueue(FUNC, args=(i, i), queue_name="ab"[i % 2])
    everything = [t.id for t in await queue.list_tasks()]

    forward = await _pages(queue, 3)
    backward = await _pages(queue, 3, descending=True)

    assert [len(page) for page in forward] == [3, 3, 1]
    assert [i for page in forward for i in page] == everything
    assert [t.id for t in await queue.list_tasks(descending=True)] == everything[::-1]
    assert [i for page in backward for i in page] == everything[::-1]
    in_b = [t.id for t in await queue.list_tasks(queue="b")]
    assert [i for page in await _pages(queue, 2, queue="b") for i in page] == in_b
    assert [i for p in await _pages(queue, 2, queue="b", descending=True) for i in p] == in_b[::-1]


async def test_a_cursor_counts_by_its_place_whatever_its_queue_and_status(
    queue: BaseTaskQueue,
) -> None:
    first = await queue.enqueue(FUNC, queue_name="a")
    mark = await queue.enqueue(FUNC, queue_name="b")
    await claim(queue, "b", lease=5)  # the cursor task is running, in another queue
    last = await queue.enqueue(FUNC, queue_name="a")

    later = await queue.list_tasks(queue="a", status=TaskStatus.PENDING, after=mark)
    earlier = await queue.list_tasks(queue="a", after=mark, descending=True)

    assert [t.id for t in later] == [last]
    assert [t.id for t in earlier] == [first]
    assert [t.id for t in await queue.list_tasks(after=first, offset=1)] == [last]
    assert await queue.list_tasks(after=last) == []


async def test_a_cursor_that_is_no_task_is_refused_naming_it(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)

    with pytest.raises(TaskNotFound, match="'gone-task'"):
        await queue.list_tasks(after="gone-task")
    with pytest.raises(TaskNotFound, match="'gone-task'"):
        await queue.list_dead(after="gone-task", descending=True)
    with pytest.raises(ValueError, match="after must be the id of a task"):
        await queue.list_tasks(after="")


OTHER = "operator:mul"


async def test_list_tasks_by_function_pages_by_cursor_with_the_other_filters(
    queue: BaseTaskQueue,
) -> None:
    ids = {
        i: await queue.enqueue(FUNC if i % 3 else OTHER, args=(i, i), queue_name="ab"[i % 2])
        for i in range(12)
    }
    await claim(queue, "a", lease=5)  # the oldest task of "a" (i=0, OTHER) runs
    others = [ids[i] for i in range(12) if i % 3 == 0]

    found = await queue.list_tasks(func=OTHER)
    newest = await _pages(queue, 2, func=OTHER, descending=True)
    pending_b = await queue.list_tasks(func=OTHER, queue="b", status=TaskStatus.PENDING)
    running = await queue.list_tasks(func=[OTHER, FUNC], status=TaskStatus.RUNNING)

    assert [t.id for t in found] == others
    assert [i for page in newest for i in page] == others[::-1]
    assert [len(page) for page in newest] == [2, 2]
    assert [t.id for t in pending_b] == [ids[3], ids[9]]
    assert [t.id for t in running] == [ids[0]]
    assert [t.id for t in await queue.list_tasks(func=[OTHER, FUNC])] == list(ids.values())
    assert [t.id for t in await queue.list_tasks(func=OTHER, offset=1, limit=2)] == others[1:3]
    assert await queue.list_tasks(func="operator:nothing") == []
    assert await queue.task_functions() == sorted([FUNC, OTHER])


async def test_list_tasks_by_function_refuses_an_empty_name(queue: BaseTaskQueue) -> None:
    with pytest.raises(ValueError, match="func must name a function"):
        await queue.list_tasks(func="")
    with pytest.raises(ValueError, match="at least one function name"):
        await queue.list_tasks(func=[])
    with pytest.raises(ValueError, match="limit must be between 1 and 100000"):
        await queue.task_functions(limit=0)


async def test_purge_removes_the_waiting_tasks_of_that_queue_and_returns_the_count(
    queue: BaseTaskQueue,
) -> None:
    waiting = [await queue.enqueue(FUNC) for _ in range(2)]
    waiting.append(await queue.enqueue(FUNC, run_in=60))

    assert await queue.purge("default") == 3

    assert await queue.get_queue_size("default") == 0
    for task_id in waiting:
        assert await queue.get_task(task_id) is None
    assert await queue.dequeue() is None


async def test_purge_leaves_other_queues_alone(queue: BaseTaskQueue) -> None:
    await queue.enqueue(FUNC)
    other = [await queue.enqueue(FUNC, queue_name="other") for _ in range(2)]

    await queue.purge("default")

    assert await queue.get_queue_size("other") == 2
    assert sorted(t.id for t in await queue.list_tasks(queue="other")) == sorted(other)


async def test_purge_leaves_running_and_finished_tasks_alone(queue: BaseTaskQueue) -> None:
    for _ in range(2):
        await queue.enqueue(FUNC)
    done = await claim(queue, lease=5)
    await queue.complete(done.id, claim_token(done))
    running = await claim(queue, lease=5)

    assert await queue.purge("default") == 0

    for task in (done, running):
        assert await queue.get_task(task.id) is not None
    assert await queue.complete(running.id, claim_token(running)) is True


async def _dead(queue: BaseTaskQueue, queue_name: str = "default") -> Task:
    """A task of ``queue_name`` that ran out of attempts."""
    await queue.enqueue(FUNC, queue_name=queue_name)
    task = await claim(queue, queue_name, lease=5)
    await queue.fail(task.id, claim_token(task), error_type="ValueError")
    stored = await queue.get_task(task.id)
    assert stored is not None
    assert stored.status is TaskStatus.DEAD
    return stored


async def test_purge_dead_deletes_the_dead_letters_of_that_queue_only(
    queue: BaseTaskQueue,
) -> None:
    dead = [await _dead(queue) for _ in range(2)]
    elsewhere = await _dead(queue, "other")
    pending = await queue.enqueue(FUNC)

    assert await queue.purge_dead("default") == 2

    for task in dead:
        assert await queue.get_task(task.id) is None
    assert [t.id for t in await queue.list_dead()] == [elsewhere.id]
    assert await queue.get_queue_size("default") == 1
    assert await queue.get_task(pending) is not None
    assert "dead" not in nonzero_stats(await queue.stats()).get("default", {})


async def test_purge_dead_of_no_queue_deletes_every_queues_dead_letters(
    queue: BaseTaskQueue,
) -> None:
    for name in ("default", "other", "third"):
        await _dead(queue, name)
    kept = await queue.enqueue(FUNC, queue_name="other")

    assert await queue.purge_dead() == 3

    assert await queue.list_dead() == []
    assert await queue.get_task(kept) is not None
    assert await queue.purge_dead() == 0


async def test_purge_takes_the_statuses_to_delete(queue: BaseTaskQueue) -> None:
    dead = await _dead(queue)
    waiting = await queue.enqueue(FUNC)

    assert await queue.purge("default", statuses=["dead", TaskStatus.PENDING]) == 2

    assert await queue.get_task(dead.id) is None
    assert await queue.get_task(waiting) is None


@pytest.mark.parametrize("status", ["running", "success", "finished", ""])
async def test_purge_refuses_a_status_it_may_not_delete_naming_it(
    queue: BaseTaskQueue, status: str
) -> None:
    await queue.enqueue(FUNC)
    running = await claim(queue, lease=5)

    with pytest.raises(ValueError, match=repr(status)):
        await queue.purge("default", statuses=[status])
    with pytest.raises(ValueError, match="at least one status"):
        await queue.purge("default", statuses=[])

    assert await queue.complete(running.id, claim_token(running)) is True


async def test_task_queue_health_check_reports_healthy(queue: BaseTaskQueue) -> None:
    health = await queue.health_check()

    assert health["status"] == "healthy"
    assert health["connected"] is True


async def test_result_storage_health_check_reports_healthy(results: BaseResultStorage) -> None:
    health = await results.health_check()

    assert health["status"] == "healthy"
    assert health["connected"] is True


async def test_event_storage_health_check_reports_healthy(events: BaseEventStorage) -> None:
    health = await events.health_check()

    assert health["status"] == "healthy"
    assert health["connected"] is True


async def test_stats_and_sizes_agree_with_the_listed_tasks_after_every_kind_of_outcome(
    queue: BaseTaskQueue,
) -> None:
    ids = await queue.enqueue_many(
        [Task(func=FUNC, args=(i, i), queue_name="mix") for i in range(8)]
    )
    done, failed, retried, released = [await claim(queue, "mix") for _ in range(4)]
    await queue.complete(done.id, claim_token(done))
    await queue.fail(failed.id, claim_token(failed), error_type="E")
    await queue.fail(retried.id, claim_token(retried), error_type="E", retry_at=ms_now())
    await queue.release(released.id, claim_token(released))
    await queue.cancel(ids[-1])
    await queue.requeue(failed.id)
    await queue.purge("other")

    listed: dict[str, int] = {}
    for task in await queue.list_tasks(queue="mix", limit=100):
        listed[task.status.value] = listed.get(task.status.value, 0) + 1
    assert nonzero_stats(await queue.stats()).get("mix") == listed
    assert await queue.get_queue_size("mix") == listed.get("pending", 0)

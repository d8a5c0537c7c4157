"""NATS-specific behaviour: URLs and errors, the server-side lease (AckWait) bringing back the
tasks of a worker that died, four worker processes draining one queue, a server restart under a
running worker, and a 3-node cluster losing a node mid-run. The shared semantics are in
tests/conformance."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.models.task import Task
from omniq.storage.nats import AsyncNATSQueue, AsyncNATSResultStorage
from omniq.storage.nats._conn import delete_project, display_servers, split_url
from tests.backends.redis_servers import free_port
from tests.conftest import service_address

pytestmark = pytest.mark.services("nats")

RECORD = "tests.backends.test_nats:record_execution"


def record_execution(key: int, path: str) -> int:
    """The task of the multi-process tests: one line per execution, appended atomically."""
    with open(path, "a") as out:
        out.write(f"{key} {os.getpid()}\n")
    return key


def _url() -> str:
    host, port = service_address("nats")
    return f"nats://{host}:{port}"


@pytest.fixture
async def project() -> AsyncIterator[str]:
    name = f"nats-test-{uuid.uuid4().hex[:10]}"
    yield name
    async with AsyncNATSQueue(servers=[_url()], project_name=name) as cleaner:
        await delete_project(cleaner)


def _executions(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)


# -- configuration --------------------------------------------------------------------------------


def test_a_url_names_every_host_and_its_credentials() -> None:
    servers, auth = split_url("nats://alice:pw@a.example:4222,b.example:4223")
    assert servers == ["nats://a.example:4222", "nats://b.example:4223"]
    assert auth == {"user": "alice", "password": "pw"}


def test_a_url_with_a_user_part_alone_carries_a_token() -> None:
    servers, auth = split_url("tls://s3cret@a.example:4222")
    assert servers == ["tls://a.example:4222"]
    assert auth == {"token": "s3cret", "tls": True}


def test_a_url_of_another_scheme_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="redis://h:1"):
        split_url("redis://h:1")


def test_shown_addresses_never_carry_credentials() -> None:
    shown = display_servers(["nats://alice:pw@a:4222", "nats://s3cret@b:4222"])
    assert shown == "nats://a:4222, nats://b:4222"


def test_an_ack_wait_shorter_than_the_lease_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"ack_wait 5\.0 .* lease_timeout 30\.0"):
        AsyncNATSQueue(servers=[_url()], lease_timeout=30, ack_wait=5)


async def test_unreachable_server_is_named_without_its_token() -> None:
    port = free_port()
    queue = AsyncNATSQueue(url=f"nats://s3cret@127.0.0.1:{port}", connect_timeout=0.5)
    with pytest.raises(BackendUnavailable) as caught:
        await queue.connect()
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_health_names_the_server_version_plainly(project: str) -> None:
    async with AsyncNATSQueue(servers=[_url()], project_name=project) as queue:
        health = await queue.health_check()
    assert re.fullmatch(r"\d+\.\d+\.\d+(-\S+)?", health["server_version"])


async def test_a_server_without_jetstream_is_named_with_what_to_do() -> None:
    from tests.backends.nats_servers import start_single

    servers = await asyncio.to_thread(start_single, jetstream=False)
    try:
        queue = AsyncNATSQueue(servers=servers.urls)
        with pytest.raises(BackendUnavailable) as caught:
            await queue.connect()
    finally:
        await asyncio.to_thread(servers.stop)
    message = str(caught.value)
    assert servers.urls[0] in message
    assert "JetStream is not enabled there (start nats-server with -js" in message


def test_nats_urls_and_the_type_name_select_the_nats_backend() -> None:
    from omniq.backend import backend_class, type_from_url
    from omniq.storage.nats import AsyncNATSBackend

    assert type_from_url("nats://127.0.0.1:4222") == "nats"
    assert type_from_url("tls://127.0.0.1:4222") == "nats"
    assert backend_class("nats") is AsyncNATSBackend
    assert backend_class("jetstream") is AsyncNATSBackend


async def test_omniq_task_queue_type_nats_runs_a_task_end_to_end(
    project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omniq import AsyncOmniQ
    from omniq.config import reload_settings

    monkeypatch.setenv("OMNIQ_TASK_QUEUE_TYPE", "nats")
    monkeypatch.setenv("OMNIQ_TASK_QUEUE_URL", _url())
    monkeypatch.setenv("OMNIQ_RESULT_STORAGE_URL", _url())
    monkeypatch.setenv("OMNIQ_SECRET_KEY", "nats-test-key")
    reload_settings()
    try:
        async with AsyncOmniQ(project_name=project) as oq:
            assert type(oq.task_queue) is AsyncNATSQueue
            task_id = await oq.enqueue("operator:add", args=(2, 3))
            await oq.start_worker(concurrency=2)
            assert await oq.get_result(task_id, timeout=20) == 5
    finally:
        monkeypatch.undo()
        reload_settings()


# -- cancellation ---------------------------------------------------------------------------------


async def _cancel_as_the_answer_lands(
    call: asyncio.Task[Any], answered: Callable[[], asyncio.Future[None]]
) -> None:
    """Lets ``call`` send its request (to a subscriber that never answers, so nothing else can
    end the wait), then resolves the future the answer would resolve and cancels ``call`` in
    the same step: the cancel lands as the answer comes in. 3.11's ``wait_for`` returned the
    answer there and the cancelled task ran on (a script's exit hung on such a loop)."""
    await asyncio.sleep(0.05)
    assert not call.done()
    answered().set_result(None)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)


async def test_a_cancel_landing_as_a_batch_is_answered_is_not_lost() -> None:
    import nats

    from omniq.storage.nats._pipe import Pipeline

    nc = await nats.connect(_url())
    subject = f"omniq.test.silent.{uuid.uuid4().hex}"
    silent = await nc.subscribe(subject)
    pipe = Pipeline(nc, 5.0)
    await pipe.start()
    try:
        call = asyncio.create_task(pipe.requests([(subject, b"", None)]))
        await _cancel_as_the_answer_lands(call, lambda: next(iter(pipe._waiting.values()))[0].done)
    finally:
        await silent.unsubscribe()
        await pipe.stop()
        await nc.close()


async def test_a_cancel_landing_as_a_pull_is_answered_is_not_lost() -> None:
    import nats

    from omniq.storage.nats._puller import Puller

    nc = await nats.connect(_url())
    stream = f"OMNIQ_SILENT_{uuid.uuid4().hex}"
    # a responder for the pull request that never answers (no stream: the server would not)
    silent = await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>")
    puller = Puller(nc, stream, hold=30.0, request_timeout=5.0)
    try:
        call = asyncio.create_task(puller.fetch("default", 1))
        await _cancel_as_the_answer_lands(call, lambda: next(iter(puller._requests)).done)
    finally:
        await puller.stop()
        await silent.unsubscribe()
        await nc.close()


async def test_requests_stop_waiting_once_the_client_stops_reading() -> None:
    """asyncio.run cancels nats-py's reading task with every other task when a program ends: a
    worker handing back its running tasks then waited the whole request timeout for answers
    that could not come (a script's Ctrl-C took 6 s on NATS against 1 s elsewhere)."""
    import nats

    from omniq.storage.nats._pipe import Pipeline
    from omniq.storage.nats._puller import Puller

    nc = await nats.connect(_url())
    subject = f"omniq.test.silent.{uuid.uuid4().hex}"
    stream = f"OMNIQ_SILENT_{uuid.uuid4().hex}"
    silent = [
        await nc.subscribe(subject),
        await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
    ]
    pipe = Pipeline(nc, 30.0)
    await pipe.start()
    puller = Puller(nc, stream, hold=30.0, request_timeout=30.0)
    try:
        request = asyncio.create_task(pipe.requests([(subject, b"", None)]))
        pull = asyncio.create_task(puller.fetch("default", 1))
        await asyncio.sleep(0.05)
        assert not request.done()
        assert not pull.done()
        nc._reading_task.cancel()  # type: ignore[union-attr]
        with pytest.raises(ConnectionError, match="stopped reading"):
            await asyncio.wait_for(request, 5)
        assert await asyncio.wait_for(pull, 5) == []
        with pytest.raises(ConnectionError, match="stopped reading"):
            await asyncio.wait_for(pipe.requests([(subject, b"", None)]), 5)
        with pytest.raises(ConnectionError, match="stopped reading"):
            await asyncio.wait_for(puller.fetch("default", 1), 5)
    finally:
        for sub in silent:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)


# -- leases held by the server ----------------------------------------------------------------------


def _claim_and_hang(url: str, project: str, claimed: Any, count: int) -> None:
    """Claims ``count`` tasks and never finishes them (killed by the test)."""

    async def main() -> None:
        queue = AsyncNATSQueue(servers=[url], project_name=project, lease_timeout=1, ack_wait=1)
        async with queue:
            tasks = await queue.dequeue_many(limit=count, worker_id="doomed", timeout=10)
            claimed.put([t.id for t in tasks])
            await asyncio.sleep(3600)

    asyncio.run(main())


@pytest.mark.timeout(120)
async def test_tasks_of_a_sigkilled_worker_come_back_by_the_servers_ack_wait(project: str) -> None:
    common = {"servers": [_url()], "project_name": project, "lease_timeout": 1, "ack_wait": 1}
    async with AsyncNATSQueue(**common) as queue:
        ids = await queue.enqueue_many(
            [Task(func="operator:add", args=(i, i), max_retries=2) for i in range(5)]
        )
        ctx = multiprocessing.get_context("spawn")
        claimed = ctx.Queue()
        doomed = ctx.Process(target=_claim_and_hang, args=(_url(), project, claimed, 5))
        doomed.start()
        try:
            taken = await asyncio.to_thread(claimed.get, True, 60)
        finally:
            os.kill(doomed.pid, signal.SIGKILL)  # type: ignore[arg-type]
            doomed.join(30)
        assert sorted(taken) == sorted(ids)

        # nobody calls recover_expired: the server delivers the messages again after AckWait
        again: list[Task] = []
        for _ in range(20):
            again += await queue.dequeue_many(limit=10, worker_id="survivor", timeout=2)
            if len(again) >= 5:
                break
        assert sorted(t.id for t in again) == sorted(ids)
        assert {t.attempts for t in again} == {2}


@pytest.mark.timeout(120)
async def test_recover_expired_in_another_process_recovers_a_sigkilled_workers_claims(
    project: str,
) -> None:
    common = {"servers": [_url()], "project_name": project, "lease_timeout": 1, "ack_wait": 1}
    async with AsyncNATSQueue(**common) as queue:
        ids = await queue.enqueue_many(
            [Task(func="operator:add", args=(i, i), max_retries=2) for i in range(3)]
            + [Task(func="operator:add", args=(9, 9), max_retries=0)]
        )
        last_try = ids[-1]
        ctx = multiprocessing.get_context("spawn")
        claimed = ctx.Queue()
        doomed = ctx.Process(target=_claim_and_hang, args=(_url(), project, claimed, 4))
        doomed.start()
        try:
            taken = await asyncio.to_thread(claimed.get, True, 60)
        finally:
            os.kill(doomed.pid, signal.SIGKILL)  # type: ignore[arg-type]
            doomed.join(30)
        assert sorted(taken) == sorted(ids)
        running = [await queue.get_task(i) for i in ids]
        assert {t.status.value for t in running if t is not None} == {"running"}

        # no claim here: recover_expired alone finds the dead process's claims, once the
        # server's AckWait (1 s) gave their messages up, and puts the records right
        recovered = 0
        for _ in range(40):
            recovered += await queue.recover_expired()
            if recovered >= 4:
                break
            await asyncio.sleep(0.25)
        assert recovered == 4
        after = {i: await queue.get_task(i) for i in ids}
        assert {i: t.status.value for i, t in after.items() if t is not None} == {
            **{i: "pending" for i in ids[:-1]},
            last_try: "dead",
        }
        assert after[last_try].error_type == "LeaseExpired"  # type: ignore[union-attr]
        assert await queue.recover_expired() == 0  # counted once

        again = await queue.dequeue_many(limit=10, worker_id="survivor", timeout=2)
        assert sorted(t.id for t in again) == sorted(ids[:-1])
        assert {t.attempts for t in again} == {2}


async def test_a_lost_lease_on_the_last_attempt_ends_dead(project: str) -> None:
    common = {"servers": [_url()], "project_name": project, "lease_timeout": 1, "ack_wait": 1}
    async with (
        AsyncNATSQueue(**common) as first,
        AsyncNATSQueue(**common) as second,
        AsyncNATSResultStorage(servers=[_url()], project_name=project) as results,
    ):
        second.wire(result_storage=results)
        task_id = await first.enqueue("operator:add", args=(1, 1), max_retries=0)
        assert (await first.dequeue(worker_id="gone")) is not None
        # `first` never heartbeats: after AckWait the server hands the message to `second`,
        # which finds the only attempt spent
        assert await second.dequeue(worker_id="next", timeout=3) is None
        stored = await second.get_task(task_id)
        assert stored is not None
        assert stored.status.value == "dead"
        assert stored.error_type == "LeaseExpired"
        result = await results.get(task_id)
        assert result is not None
        assert result.status.value == "error"


# -- worker processes -----------------------------------------------------------------------------


def _serve(url: str, project: str, stop: Any, lease: float = 30.0) -> None:
    """A worker process: one AsyncWorker on the shared queue until ``stop`` is set."""
    from omniq.workers import AsyncWorker

    async def main() -> None:
        queue = AsyncNATSQueue(servers=[url], project_name=project, lease_timeout=lease)
        worker = AsyncWorker(queue, concurrency=50, task_modules=[__name__])
        await worker.start()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await worker.stop()
        await queue.close()

    asyncio.run(main())


async def _success_count(queue: AsyncNATSQueue) -> int:
    return (await queue.stats()).get("default", {}).get("success", 0)


@pytest.mark.timeout(420)
async def test_four_worker_processes_run_each_of_10000_tasks_exactly_once(project: str) -> None:
    total = 10_000
    with tempfile.TemporaryDirectory(prefix="omniq-nats-") as folder:
        log = Path(folder) / "executions"
        async with AsyncNATSQueue(servers=[_url()], project_name=project) as queue:
            await queue.enqueue_many([Task(func=RECORD, args=(i, str(log))) for i in range(total)])
            ctx = multiprocessing.get_context("spawn")
            stop = ctx.Event()
            workers = [ctx.Process(target=_serve, args=(_url(), project, stop)) for _ in range(4)]
            for w in workers:
                w.start()
            try:
                for _ in range(3000):
                    if sum(_executions(log).values()) >= total:
                        break
                    if any(w.exitcode is not None for w in workers):
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # the last acknowledgements
            finally:
                stop.set()
                for w in workers:
                    await asyncio.to_thread(w.join, 60)
                    if w.is_alive():
                        w.kill()
            runs = _executions(log)
            assert sorted(runs) == list(range(total))
            assert set(runs.values()) == {1}
            assert all(w.exitcode == 0 for w in workers)
            assert await _success_count(queue) == total


@pytest.mark.timeout(300)
async def test_a_sigkilled_worker_process_loses_no_task(project: str) -> None:
    total = 2_000
    with tempfile.TemporaryDirectory(prefix="omniq-nats-") as folder:
        log = Path(folder) / "executions"
        common = {"servers": [_url()], "project_name": project}
        async with AsyncNATSQueue(**common) as queue:
            await queue.enqueue_many(
                [Task(func=RECORD, args=(i, str(log)), max_retries=3) for i in range(total)]
            )
            ctx = multiprocessing.get_context("spawn")
            # one stop event each: setting an event a SIGKILLed process was waiting on blocks
            # (multiprocessing's notify_all waits for every sleeper to wake)
            stops = [ctx.Event() for _ in range(2)]
            workers = [
                ctx.Process(target=_serve, args=(_url(), project, stop, 3.0)) for stop in stops
            ]
            for w in workers:
                w.start()
            try:
                for _ in range(3000):
                    if sum(_executions(log).values()) >= total // 4:
                        break
                    await asyncio.sleep(0.02)
                os.kill(workers[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
                # the survivor finishes its share and, after AckWait (the lease, 3 s), what
                # the killed one held
                for _ in range(1200):
                    if len(_executions(log)) >= total:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # the last acknowledgements
            finally:
                stops[1].set()
                for w in workers:
                    await asyncio.to_thread(w.join, 60)
                    if w.is_alive():
                        w.kill()
            runs = _executions(log)
            assert sorted(runs) == list(range(total))
            assert await _success_count(queue) == total


# -- the server going away -----------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_server_restart_mid_run_does_not_crash_a_worker_and_loses_nothing() -> None:
    from omniq import AsyncOmniQ
    from tests.backends.nats_servers import start_single

    servers = await asyncio.to_thread(start_single)
    try:
        common = {"servers": servers.urls, "project_name": "restart", "secret_key": "k"}
        queue = AsyncNATSQueue(**common)
        results = AsyncNATSResultStorage(**common)
        async with AsyncOmniQ(task_queue=queue, result_store=results) as oq:
            ids = await oq.enqueue_many(
                [{"func": "operator:add", "args": (i, i)} for i in range(600)]
            )
            await oq.start_worker(concurrency=20)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(servers.restart, servers.nodes[0])
            done = 0
            for _ in range(1200):
                try:
                    done = await _success_count(queue)
                except BackendUnavailable:
                    done = 0
                if done >= len(ids):
                    break
                await asyncio.sleep(0.1)
            assert done == len(ids)
            assert oq.worker is not None
            assert oq.worker.is_running
    finally:
        await asyncio.to_thread(servers.stop)


@pytest.mark.timeout(300)
async def test_a_cluster_node_killed_mid_run_loses_no_task() -> None:
    from omniq import AsyncOmniQ
    from tests.backends.nats_servers import start_cluster

    cluster = await asyncio.to_thread(start_cluster, 3)
    try:
        common = {
            "servers": cluster.urls,
            "project_name": "cluster",
            "secret_key": "k",
            "replicas": 3,
        }
        queue = AsyncNATSQueue(**common)
        results = AsyncNATSResultStorage(**common)
        async with AsyncOmniQ(task_queue=queue, result_store=results) as oq:
            ids = await oq.enqueue_many(
                [{"func": "operator:add", "args": (i, i)} for i in range(600)]
            )
            await oq.start_worker(concurrency=20)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(cluster.nodes[0].kill)
            done = 0
            for _ in range(1800):
                try:
                    done = await _success_count(queue)
                except BackendUnavailable:
                    done = 0
                if done >= len(ids):
                    break
                await asyncio.sleep(0.1)
            assert done == len(ids)
            got = await results.get_many(ids)
            assert sorted(got) == sorted(ids)
            assert oq.worker is not None
            assert oq.worker.is_running
    finally:
        await asyncio.to_thread(cluster.stop)

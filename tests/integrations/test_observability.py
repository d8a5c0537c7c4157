"""Prometheus metrics and OpenTelemetry spans with a real worker process
(``omniq worker --app tests.integrations.observed_app:oq``) on SQLite and Redis: the test enqueues,
the worker runs, the metrics are scraped over HTTP and the spans read back from the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from omniq import AsyncOmniQ, OmniQ, TaskFailedError
from omniq.backend import create_backend
from omniq.callbacks import default_hooks, enqueue_hooks, run_wrappers
from omniq.observability.prometheus import TaskMetrics
from omniq.observability.tracing import METADATA_KEY, TaskTracing
from tests.integrations import observed_app
from tests.integrations.observed_app import span_record
from tests.script_runs import ROOT, ScriptPlace, open_place

pytestmark = pytest.mark.timeout(120)

APP = "tests.integrations.observed_app:oq"


@pytest.fixture(params=["sqlite", "redis"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place(request.param, tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def worker_process(place: ScriptPlace, *args: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    log = place.folder / "worker.log"
    full_env = {
        **place.env,
        "OMNIQ_TASK_QUEUE_URL": place.url,
        "PYTHONPATH": str(ROOT),
        **env,
    }
    command = [sys.executable, "-m", "omniq", "worker", "--app", APP, *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.terminate()
        code = proc.wait(20)
        assert code == 0, log.read_text()


def producer(place: ScriptPlace) -> AsyncOmniQ:
    return AsyncOmniQ.from_backend(create_backend(url=place.url, project_name=place.project))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_worker_metrics_scraped_over_http(place: ScriptPlace) -> None:
    port = free_port()
    oq = producer(place)
    local = TaskMetrics().install()  # the producer counts its own enqueues
    try:
        with worker_process(
            place, "--metrics-port", str(port), "--metrics-interval", "0.2"
        ) as proc:
            async with oq, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                adds = [await oq.enqueue(observed_app.add, args=(i, 1)) for i in range(5)]
                failing = await oq.enqueue(observed_app.boom)
                assert await oq.get_results(adds, timeout=30) == [1, 2, 3, 4, 5]
                with pytest.raises(TaskFailedError, match="boom"):
                    await oq.get_result(failing, timeout=30)
                add = {"queue": "default", "task": "obs.add"}
                bad = {"queue": "default", "task": "obs.boom"}
                expected = {
                    ("omniq_tasks_started_total", "add"): 5,
                    ("omniq_tasks_succeeded_total", "add"): 5,
                    ("omniq_task_duration_seconds_count", "add"): 5,
                    ("omniq_task_queue_wait_seconds_count", "add"): 5,
                    ("omniq_tasks_started_total", "bad"): 2,
                    ("omniq_tasks_failed_total", "bad"): 2,
                    ("omniq_tasks_retried_total", "bad"): 1,
                    ("omniq_tasks_dead_total", "bad"): 1,
                    ("omniq_tasks_succeeded_total", "bad"): 0,
                    ("omniq_tasks_failed_total", "add"): 0,
                }
                got: dict[Any, float] = {}
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    found = samples((await http.get("/metrics")).text)
                    got = {
                        key: value(found, key[0], **(add if key[1] == "add" else bad))
                        for key in expected
                    }
                    sampled = (
                        value(found, "omniq_queue_tasks", queue="default", status="success") == 5
                        and value(found, "omniq_queue_tasks", queue="default", status="dead") == 1
                    )
                    if got == expected and sampled:
                        break
                    assert proc.poll() is None
                    await asyncio.sleep(0.1)
                assert got == expected
                assert sampled, "queue sizes never sampled"
                assert value(found, "omniq_queue_depth", queue="default") == 0
                assert value(found, "omniq_workers", state="running") >= 1
                # nothing was enqueued in the worker's process
                assert value(found, "omniq_tasks_enqueued_total", **add) == 0
        mine = samples(local.text())
        assert value(mine, "omniq_tasks_enqueued_total", queue="default", task="obs.add") == 5
        assert value(mine, "omniq_tasks_enqueued_total", queue="default", task="obs.boom") == 1
    finally:
        local.close()
    assert local.count_enqueued not in enqueue_hooks


def read_spans(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            spans = [json.loads(line) for line in path.read_text().splitlines()]
            if len(spans) >= count:
                return spans
        time.sleep(0.05)
    pytest.fail(f"{len(spans)} of {count} spans written by the worker: {spans}")


async def test_spans_link_enqueue_and_run_across_processes(place: ScriptPlace) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TaskTracing(provider).install()  # the producer's side; the worker has its own
    spans_file = place.folder / "spans.jsonl"
    oq = producer(place)
    try:
        with worker_process(place, OBS_SPANS_FILE=str(spans_file)):
            async with oq:
                with provider.get_tracer("test").start_as_current_span("POST /signup"):
                    ok = await oq.enqueue(observed_app.add, args=(2, 3))
                    ok_sync = await oq.enqueue(observed_app.add_sync, args=(4, 5))
                    failing = await oq.enqueue(observed_app.boom)
                assert await oq.get_results([ok, ok_sync], timeout=30) == [5, 9]
                with pytest.raises(TaskFailedError):
                    await oq.get_result(failing, timeout=30)
                stored = await oq.get_task(ok)
                assert stored is not None
                assert "traceparent" in stored.metadata[METADATA_KEY]
        worker_spans = read_spans(spans_file, 6)
    finally:
        tracing.uninstall()
    mine = [span_record(s) for s in exporter.get_finished_spans()]
    (request,) = [s for s in mine if s["name"] == "POST /signup"]
    enqueues = {s["name"]: s for s in mine if s["name"].startswith("enqueue ")}
    assert sorted(enqueues) == ["enqueue obs.add", "enqueue obs.add_sync", "enqueue obs.boom"]
    for span in enqueues.values():
        assert span["kind"] == "PRODUCER"
        assert span["trace_id"] == request["trace_id"]
        assert span["parent_id"] == request["span_id"]
    for task, task_id in (("obs.add", ok), ("obs.add_sync", ok_sync)):
        (run,) = [s for s in worker_spans if s["name"] == f"run {task}"]
        assert run["kind"] == "CONSUMER"
        assert run["trace_id"] == request["trace_id"]
        assert run["parent_id"] == enqueues[f"enqueue {task}"]["span_id"]
        assert run["status"] == "UNSET"
        assert run["attributes"]["messaging.message.id"] == task_id
        assert run["attributes"]["omniq.task.attempt"] == 1
        # the task's own span (async code, and a sync function in its thread) is the run's child
        (own,) = [s for s in worker_spans if s["name"] == f"{task.split('.')[1]}'s own work"]
        assert own["trace_id"] == request["trace_id"]
        assert own["parent_id"] == run["span_id"]
    runs_bad = [s for s in worker_spans if s["name"] == "run obs.boom"]
    assert [s["attributes"]["omniq.task.attempt"] for s in runs_bad] == [1, 2]
    for span in runs_bad:
        assert span["trace_id"] == request["trace_id"]
        assert span["parent_id"] == enqueues["enqueue obs.boom"]["span_id"]
        assert span["status"] == "ERROR"
        assert span["attributes"]["error.type"] == "ValueError"


def test_without_metrics_or_tracing_nothing_is_installed() -> None:
    # the enqueue path pays one emptiness test, the worker no hook at all
    assert enqueue_hooks == []
    assert run_wrappers == []
    assert not default_hooks
    assert not AsyncOmniQ().callbacks


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port must be 1-65535, got 70000"),
        (["--metrics-port", "9100", "--metrics-interval", "0"], "--metrics-interval must be > 0"),
    ],
)
def test_bad_metrics_options_are_refused_by_name(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omniq", "worker", "--url", f"sqlite:///{tmp_path}/m.db", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_a_taken_metrics_port_stops_the_worker_with_the_address(place: ScriptPlace) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "omniq", "worker", "--app", APP, "--metrics-port", str(port)],
            cwd=ROOT,
            env={**place.env, "OMNIQ_TASK_QUEUE_URL": place.url, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


def test_the_sync_api_enqueues_under_the_calling_threads_span(tmp_path: Path) -> None:
    # a Django view enqueues through the sync OmniQ, whose coroutines run on another thread
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TaskTracing(provider).install()
    oq = OmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path}/s.db"))
    try:
        with provider.get_tracer("test").start_as_current_span("GET /view"):
            task_id = oq.enqueue(observed_app.add, args=(1, 1))
        stored = oq.get_task(task_id)
    finally:
        tracing.uninstall()
        oq.close()
    spans = {s["name"]: s for s in map(span_record, exporter.get_finished_spans())}
    view, enqueue = spans["GET /view"], spans["enqueue obs.add"]
    assert enqueue["parent_id"] == view["span_id"]
    assert stored.metadata[METADATA_KEY]["traceparent"].split("-")[2] == enqueue["span_id"]

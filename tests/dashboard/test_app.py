"""The dashboard over HTTP: pages, the REST API and its schema, live streams, and its security
(credentials beyond loopback, CSRF on actions, escaping, no third-party assets)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from omniq.dashboard.queries import Queries, TaskFilter
from omniq.dashboard.security import CSRF_COOKIE, Credentials
from omniq.dashboard.server import build_server, listen
from omniq.exceptions import ConfigError
from omniq.models.schedule import ScheduleState
from omniq.models.task import TaskStatus
from tests.dashboard.conftest import serve
from tests.dashboard.sample import populate

TOKEN = "s3cret-token-of-the-dashboard"


@contextlib.asynccontextmanager
async def csrf_client(served: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client that loaded a page (so it holds the CSRF cookie) and sends the token back."""
    async with served.client() as client:
        page = await client.get("/")
        assert page.status_code == 200
        client.headers["X-CSRF-Token"] = client.cookies[CSRF_COOKIE]
        yield client


async def sse_until(
    client: httpx.AsyncClient, path: str, signals: dict[str, Any], done: Any, limit: float = 15
) -> str:
    """Reads a page's stream until ``done(text so far)`` holds; returns what was read."""
    seen = ""

    async def read() -> None:
        nonlocal seen
        url = httpx.URL(path)
        params = {**dict(url.params), "datastar": json.dumps(signals)}
        async with client.stream("GET", url.copy_with(query=None), params=params) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for chunk in r.aiter_text():
                seen += chunk
                if done(seen):
                    return

    await asyncio.wait_for(read(), limit)
    return seen


async def test_api_lists_queues_tasks_and_dead_letters(dashboard: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=2)
    async with served.client() as client:
        queues = (await client.get("/api/queues")).json()
        assert queues["default"]["counts"] == {"success": 2, "dead": 3}
        assert queues["reports"]["size"] == 1
        dead = (await client.get("/api/dead")).json()
        assert sorted(t["id"] for t in dead["tasks"]) == sorted(ids["dead"])
        page = (await client.get("/api/tasks", params={"queue": "high", "limit": 1})).json()
        assert page["total"] == 2
        assert page["has_more"] is True
        assert len(page["tasks"]) == 1
        detail = (await client.get(f"/api/tasks/{ids['dead'][0]}")).json()
        assert detail["result"]["status"] == "error"
        assert [e["event_type"] for e in detail["events"]][-1] == "dead"


async def test_api_pages_newest_first_by_cursor_both_ways(dashboard: Any) -> None:
    served = await dashboard()
    ids = [
        await served.app.enqueue("tests.dashboard.sample:send_email", args=(f"u{i}", "hi"))
        for i in range(7)
    ]
    newest_first = ids[::-1]
    async with served.client() as client:
        pages, cursor = [], None
        while True:
            params = {"limit": 3, **({"after": cursor} if cursor else {})}
            page = (await client.get("/api/tasks", params=params)).json()
            pages.append(page)
            cursor = page["after"]
            if cursor is None:
                break
        assert [[t["id"] for t in p["tasks"]] for p in pages] == [
            newest_first[:3],
            newest_first[3:6],
            newest_first[6:],
        ]
        assert [p["before"] for p in pages] == [None, newest_first[3], newest_first[6]]
        assert all(p["total"] == 7 for p in pages)
        back = await client.get("/api/tasks", params={"limit": 3, "before": newest_first[6]})
        assert [t["id"] for t in back.json()["tasks"]] == newest_first[3:6]
        # fewer newer tasks than a page: the newest page, whole
        top = await client.get("/api/tasks", params={"limit": 3, "before": newest_first[1]})
        assert [t["id"] for t in top.json()["tasks"]] == newest_first[:3]
        assert top.json()["before"] is None
        both = await client.get("/api/tasks", params={"after": ids[0], "before": ids[1]})
        assert both.status_code == 400
        await served.app.task_queue.purge("default")
        gone = (await client.get("/api/tasks", params={"after": newest_first[2]})).json()
        assert gone["tasks"] == []
        assert "gone" in gone["note"]


async def test_api_names_the_bad_value_and_the_unknown_task(dashboard: Any) -> None:
    served = await dashboard()
    async with served.client() as client:
        bad = await client.get("/api/tasks", params={"status": "exploded"})
        assert bad.status_code == 400
        assert "'exploded'" in bad.text
        missing = await client.get("/api/tasks/nope")
        assert missing.status_code == 404
        assert "'nope'" in missing.text


async def test_openapi_schema_describes_the_api(dashboard: Any) -> None:
    served = await dashboard()
    async with served.client() as client:
        schema = (await client.get("/schema/openapi.json")).json()
    assert {
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/schedules/{schedule_id}/{action}",
        "/api/dead/requeue",
        "/api/dead/purge",
        "/api/events",
    } <= set(schema["paths"])
    assert not any(p.startswith("/ui/") for p in schema["paths"])


async def test_every_page_renders_with_assets_from_the_package_only(dashboard: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=1)
    async with served.client() as client:
        for path in ("/", "/tasks", f"/tasks/{ids['dead'][0]}", "/schedules", "/dead", "/events"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert assets
            assert all(a.startswith("/") for a in assets), (path, assets)
        js = await client.get("/static/datastar.js")
        assert js.status_code == 200
        assert "datastar-merge-fragments" in js.text
        assert (await client.get("/static/omniq.css")).status_code == 200


async def test_task_arguments_and_errors_are_escaped(dashboard: Any) -> None:
    served = await dashboard()
    evil = '<script>alert("x")</script>'
    task_id = await served.app.enqueue("tests.dashboard.sample:send_email", args=(evil, evil))
    async with served.client() as client:
        for path in ("/tasks", f"/tasks/{task_id}"):
            html = (await client.get(path)).text
            assert evil not in html
            assert "&lt;script&gt;alert(" in html


async def test_actions_need_the_csrf_token(dashboard: Any) -> None:
    served = await dashboard()
    task_id = await served.app.enqueue("tests.dashboard.sample:send_email", args=("a", "b"))
    async with served.client() as client:
        await client.get("/")  # has the cookie, but does not send the header
        refused = await client.post(f"/api/tasks/{task_id}/cancel")
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.text
        wrong = await client.post(
            f"/api/tasks/{task_id}/cancel", headers={"X-CSRF-Token": "forged-token-value-123"}
        )
        assert wrong.status_code == 403
    assert (await served.app.get_task(task_id)).status is TaskStatus.PENDING
    async with csrf_client(served) as client:
        foreign = await client.post(
            f"/api/tasks/{task_id}/cancel", headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        ok = await client.post(f"/api/tasks/{task_id}/cancel")
        assert ok.status_code == 200
        assert ok.json()["done"] is True
    assert (await served.app.get_task(task_id)).status is TaskStatus.CANCELLED


async def test_schedule_actions_change_the_backend(dashboard: Any) -> None:
    served = await dashboard()
    await populate(served.app, n=1)
    async with csrf_client(served) as client:
        assert (await client.post("/api/schedules/nightly-sales/pause")).json()["done"] is True
        assert (await served.app.get_schedule("nightly-sales")).state is ScheduleState.PAUSED
        await client.post("/api/schedules/nightly-sales/resume")
        assert (await served.app.get_schedule("nightly-sales")).state is ScheduleState.ACTIVE
        run = (await client.post("/api/schedules/hourly-digest/run")).json()
        assert (await served.app.get_task(run["task_id"])).schedule_id == "hourly-digest"
        await client.post("/api/schedules/banner-refresh/delete")
        assert await served.app.get_schedule("banner-refresh") is None
        unknown = await client.post("/api/schedules/banner-refresh/explode")
        assert unknown.status_code == 404


async def test_requeue_all_moves_every_dead_task_back(dashboard: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=1)
    async with csrf_client(served) as client:
        moved = (await client.post("/api/dead/requeue")).json()
    assert moved == {"requeued": len(ids["dead"])}
    assert await served.app.list_dead() == []


async def test_purge_dead_deletes_the_dead_tasks_of_the_queue_asked(dashboard: Any) -> None:
    served = await dashboard()
    ids = await populate(served.app, n=1)
    async with csrf_client(served) as client:
        none = (await client.post("/api/dead/purge", params={"queue": "high"})).json()
        assert none == {"purged": 0}
        bad = await client.post("/api/dead/purge", params={"queue": "bad queue!"})
        assert bad.status_code == 400
        assert "bad queue!" in bad.text
        purged = (await client.post("/api/dead/purge")).json()
        assert purged == {"purged": len(ids["dead"])}
        listed = (await client.get("/api/dead")).json()
    assert listed["tasks"] == []
    assert listed["total"] == 0
    assert await served.app.list_dead() == []
    assert await served.app.get_task(ids["dead"][0]) is None
    assert await served.app.get_task(ids["ok"][0]) is not None


async def test_a_token_is_required_and_kept_in_a_cookie(dashboard: Any) -> None:
    served = await dashboard(Credentials(token=TOKEN))
    async with served.client() as client:
        assert (await client.get("/")).status_code == 401
        assert (await client.get("/api/queues")).status_code == 401
        link = await client.get("/tasks", params={"token": TOKEN, "status": "dead"})
        assert link.status_code == 303
        assert link.headers["location"] == "/tasks?status=dead"  # the token leaves the URL
        assert (await client.get("/tasks?status=dead")).status_code == 200  # by its cookie
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with served.client(headers=bearer) as client:
        assert (await client.get("/api/queues")).status_code == 200
        # a bearer header is no cookie a browser adds on its own: no CSRF token needed
        task_id = await served.app.enqueue("tests.dashboard.sample:send_email", args=("a", "b"))
        assert (await client.post(f"/api/tasks/{task_id}/cancel")).status_code == 200


async def test_basic_auth_asks_the_browser_and_checks_the_password(dashboard: Any) -> None:
    served = await dashboard(Credentials(basic="admin:hunter22"))

    def basic(user_pass: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()}

    async with served.client() as client:
        asked = await client.get("/")
        assert asked.status_code == 401
        assert asked.headers["www-authenticate"].startswith("Basic")
        assert (await client.get("/", headers=basic("admin:wrong"))).status_code == 401
        assert (await client.get("/", headers=basic("admin:hunter22"))).status_code == 200


def test_the_app_leaves_the_root_logger_alone(sqlite_app: Any) -> None:
    """Beside a worker, a handler of Litestar's on the root logger printed each of the worker's
    log lines a second time."""
    import logging

    from omniq.dashboard import create_app

    root = logging.getLogger()
    before = list(root.handlers)
    create_app(sqlite_app)
    assert root.handlers == before


def test_binding_beyond_loopback_without_credentials_is_refused(sqlite_app: Any) -> None:
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0"):
        build_server(sqlite_app, host="0.0.0.0", port=0, credentials=Credentials())


def test_a_short_token_and_a_malformed_basic_credential_are_refused() -> None:
    with pytest.raises(ConfigError, match="16 characters"):
        Credentials(token="short")
    with pytest.raises(ConfigError, match="user:password"):
        Credentials(basic="nopassword")


def test_a_port_in_use_is_an_error_naming_it(sqlite_app: Any) -> None:
    first = build_server(sqlite_app, port=0, credentials=Credentials())
    try:
        with pytest.raises(ConfigError, match=str(first.port)):
            build_server(sqlite_app, port=first.port, credentials=Credentials())
    finally:
        first.sock.close()


async def test_the_task_stream_sends_the_list_then_its_changes(dashboard: Any) -> None:
    served = await dashboard()
    task_id = await served.app.enqueue("tests.dashboard.sample:send_email", args=("a", "b"))
    signals = {"queue": "", "status": "", "func": "", "search": "", "page": 0}
    async with served.client() as client:
        first = await sse_until(
            client,
            "/ui/stream/tasks?cid=t1",
            signals,
            lambda text: "datastar-merge-fragments" in text,
        )
        assert 'id="tasks"' in first
        assert f'data-task-id="{task_id}" data-status="pending"' in first

        async def complete() -> None:
            await asyncio.sleep(0.3)
            await served.app.cancel(task_id)

        changer = asyncio.create_task(complete())
        later = await sse_until(
            client,
            "/ui/stream/tasks?cid=t1",
            signals,
            lambda text: 'data-status="cancelled"' in text,
        )
        await changer
        assert f'data-task-id="{task_id}" data-status="cancelled"' in later


async def test_reopening_a_stream_ends_the_older_one_of_that_page(dashboard: Any) -> None:
    served = await dashboard()
    async with served.client() as client:
        older_ended = asyncio.Event()

        async def older() -> None:
            async with client.stream("GET", "/ui/stream/overview?cid=tab") as r:
                async for _ in r.aiter_text():
                    pass
            older_ended.set()

        reading = asyncio.create_task(older())
        await asyncio.sleep(0.5)
        assert not older_ended.is_set()
        await sse_until(
            client,
            "/ui/stream/overview?cid=tab",
            {},
            lambda text: "datastar-merge-fragments" in text,
        )
        await asyncio.wait_for(older_ended.wait(), 5)
        await reading


async def test_a_stream_cancelled_as_it_is_woken_ends() -> None:
    """A page closed as an action wakes its stream: the cancel lands as the wait ends (3.11's
    wait_for returned normally there, and the closed page's stream rendered on)."""
    from omniq.dashboard.board import _Live

    live = _Live()
    sleeping = asyncio.create_task(live.sleep(60))
    await asyncio.sleep(0.01)
    live.wake.set()
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sleeping, 5)


async def test_an_action_updates_open_streams_at_once(dashboard: Any) -> None:
    # a refresh far longer than the test: only the action's wake-up can deliver the change
    served = await dashboard(refresh=60)
    await populate(served.app, n=1)
    async with csrf_client(served) as client:
        first_render = asyncio.Event()

        async def pause_after_the_first_render() -> None:
            await first_render.wait()
            assert (await client.post("/api/schedules/nightly-sales/pause")).status_code == 200

        def done(text: str) -> bool:
            if "datastar-merge-fragments" in text:
                first_render.set()
            return 'data-schedule-id="nightly-sales" data-state="paused"' in text

        pausing = asyncio.create_task(pause_after_the_first_render())
        seen = await sse_until(client, "/ui/stream/schedules?cid=s1", {}, done, limit=10)
        await pausing
    assert seen.count("datastar-merge-fragments") == 2  # the first render, then the change


def test_the_listening_socket_says_it_is_tcp() -> None:
    """asyncio sets TCP_NODELAY only on connections of sockets created as IPPROTO_TCP; without
    it each response on a kept-alive connection waited for a delayed ACK (~40 ms here)."""
    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


async def test_a_task_id_with_spaces_and_hashes_links_to_its_page(dashboard: Any) -> None:
    served = await dashboard()
    task_id = await served.app.enqueue(
        "tests.dashboard.sample:send_email", args=("a", "b"), task_id="order #7 retry?"
    )
    async with served.client() as client:
        listing = (await client.get("/tasks")).text
        assert 'href="/tasks/order%20%237%20retry%3F"' in listing
        assert '@post("/ui/tasks/order%20%237%20retry%3F/cancel"' in listing.replace("&#34;", '"')
        page = await client.get("/tasks/order%20%237%20retry%3F")
        assert page.status_code == 200
        assert task_id in page.text


async def test_one_reading_of_the_counts_serves_its_users_until_an_action(
    sqlite_app: Any, monkeypatch: Any
) -> None:
    """The counts by status scan the whole store on most backends: the task list reads them
    fresh (it pages from them), the queue list reuses that reading within its time to live, and
    forget() (after an action) drops it."""
    await populate(sqlite_app, n=1)
    calls = 0
    real = sqlite_app.task_queue.stats

    async def counted() -> dict[str, dict[str, int]]:
        nonlocal calls
        calls += 1
        return await real()

    monkeypatch.setattr(sqlite_app.task_queue, "stats", counted)
    q = Queries(sqlite_app, stats_ttl=60)
    page = await q.tasks(TaskFilter(queue="reports"))  # reads fresh: it pages from the count
    queues = await q.queues()
    assert calls == 1
    assert queues["reports"]["size"] == page.total == 1
    await q.queues()
    assert calls == 1
    q.forget()
    await q.queues()
    assert calls == 2
    await sqlite_app.close()


async def test_a_page_whose_capability_the_backend_lacks_says_so() -> None:
    from omniq import AsyncOmniQ
    from omniq.storage.base import Capability
    from omniq.storage.memory import AsyncMemoryQueue

    class NoSchedules(AsyncMemoryQueue):
        """A real memory queue declaring one capability fewer, as a backend without it would."""

        @classmethod
        def capabilities(cls) -> frozenset[Capability]:
            return super().capabilities() - {Capability.SCHEDULES}

    app = AsyncOmniQ(project_name="caps", task_queue=NoSchedules(project_name="caps"))
    server, serving = await serve(app)
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            page = await client.get("/schedules")
            assert page.status_code == 200
            assert "backend does not offer schedules" in page.text
            assert (await client.get("/")).status_code == 200
    finally:
        server.stop()
        await serving
        await app.close()


@pytest.mark.parametrize("url", ["sqlite", "memory://"])
async def test_function_filter_matches_part_of_a_name_and_pages_by_cursor(
    url: str, tmp_path: Any
) -> None:
    """On SQLite the filter reads the index by function (every match, a count it cannot know);
    in memory it reads the tasks back from the cursor: both show the same pages."""
    from omniq import AsyncOmniQ
    from omniq.backend import create_backend

    where = f"sqlite:///{tmp_path / 'f.db'}" if url == "sqlite" else url
    app = AsyncOmniQ.from_backend(create_backend(url=where, project_name="f"))
    await app.connect()
    try:
        q = Queries(app)
        charges = []
        for i in range(7):
            await app.task_queue.enqueue("tests.dashboard.sample:send_email", args=(f"u{i}", "x"))
            charges.append(
                await app.task_queue.enqueue("tests.dashboard.sample:charge_card", args=(i, 1.0))
            )
        first = await q.tasks(TaskFilter.parse(func="charge", limit=3))
        second = await q.tasks(TaskFilter.parse(func="charge", limit=3, after=first.after))
        third = await q.tasks(TaskFilter.parse(func="charge", limit=3, after=second.after))
        none = await q.tasks(TaskFilter.parse(func="refund"))
        functions = await q.functions()
    finally:
        await app.close()

    shown = [r["id"] for page in (first, second, third) for r in page.rows]
    assert shown == charges[::-1]
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)
    assert first.total is None
    assert none.rows == []
    assert not none.has_more
    if url == "sqlite":
        assert app.task_queue.lists_by_function
        assert none.note == "no stored task's function name contains 'refund'"
        assert functions == [
            "tests.dashboard.sample:charge_card",
            "tests.dashboard.sample:send_email",
        ]
    else:
        assert functions == []


async def test_a_task_enqueued_elsewhere_shows_on_an_open_page_long_before_its_refresh(
    dashboard: Any, tmp_path: Any
) -> None:
    """The counts watcher wakes the open streams: with a 30 s refresh, a task another
    application (another process, in effect) enqueues still shows within a few seconds."""
    from omniq import AsyncOmniQ
    from omniq.backend import create_backend

    served = await dashboard(refresh=30.0)
    first_render = asyncio.Event()
    elsewhere = AsyncOmniQ.from_backend(
        create_backend(url=f"sqlite:///{tmp_path / 'shop.db'}", project_name="shop")
    )
    await elsewhere.connect()
    try:
        async with served.client() as client:

            def done(seen: str) -> bool:
                first_render.set()
                return task_id is not None and f'data-task-id="{task_id}"' in seen

            task_id: str | None = None
            reading = asyncio.create_task(
                sse_until(client, "/ui/stream/tasks?cid=w1", {}, done, limit=10)
            )
            await first_render.wait()
            task_id = await elsewhere.task_queue.enqueue(
                "tests.dashboard.sample:send_email", args=("x", "y")
            )
            await reading
    finally:
        await elsewhere.close()


async def test_the_function_field_suggests_the_stored_functions(dashboard: Any) -> None:
    served = await dashboard()
    await populate(served.app, n=1)
    async with served.client() as client:
        html = (await client.get("/tasks")).text
    listed = re.search(r'<datalist id="func-names">(.*?)</datalist>', html)
    assert listed is not None
    names = re.findall(r'<option value="([^"]+)">', listed.group(1))
    assert names == sorted(names)
    assert "tests.dashboard.sample:charge_card" in names
    assert 'list="func-names"' in html


async def test_a_page_deeper_than_max_offset_by_number_is_refused_pointing_to_the_cursor(
    dashboard: Any,
) -> None:
    """A page by number makes the store skip every task before it; the cursor does not."""
    from omniq.dashboard.queries import MAX_OFFSET

    served = await dashboard()
    async with served.client() as client:
        fine = await client.get("/api/tasks", params={"page": MAX_OFFSET // 50, "limit": 50})
        deep = await client.get("/api/tasks", params={"page": MAX_OFFSET // 50 + 1, "limit": 50})
        cursor = await client.get("/api/tasks", params={"page": 10**6, "after": "x"})
    assert fine.status_code == 200
    assert deep.status_code == 400
    assert f"page {MAX_OFFSET // 50 + 1}" in deep.text
    assert "after=" in deep.text
    # with a cursor the number only numbers the page (this cursor is gone: the newest page)
    assert cursor.status_code == 200
    assert "gone" in cursor.json()["note"]


async def test_the_overview_shows_a_worker_cut_off_from_a_store(dashboard: Any) -> None:
    """A worker whose result store is away (its breaker open) says so on the overview, with the
    finished tasks it keeps; a worker with every breaker closed shows nothing of the kind."""
    from omniq._time import utcnow
    from omniq.models.worker import WorkerInfo

    served = await dashboard()
    common: dict[str, Any] = {
        "worker_type": "async",
        "hostname": "host-b",
        "pid": 7,
        "queues": ["default"],
        "concurrency": 4,
        "started_at": utcnow(),
    }
    cut_off = WorkerInfo(
        worker_id="w-cut-off",
        breakers={"queue": "closed", "results": "open", "events": "half_open"},
        buffered=1234,
        **common,
    )
    fine = WorkerInfo(
        worker_id="w-fine", breakers={"queue": "closed", "results": "closed"}, **common
    )
    for record in (cut_off, fine):
        await served.app.task_queue.register_worker(record, 30)
    async with served.client() as client:
        page = (await client.get("/")).text
    assert "results open" in page
    assert "events half-open" in page
    assert "1,234 results buffered" in page
    assert "queue open" not in page
    assert "queue closed" not in page
    assert "1 cannot reach a store" in page


async def test_the_overview_shows_rate_limit_buckets_and_concurrency_keys(dashboard: Any) -> None:
    from omniq.models.limits import parse_rate_limit

    served = await dashboard()
    queue = served.app.task_queue
    await queue.connect()
    limit = parse_rate_limit("2/m")  # room for 1, then one per 30 s
    await queue.take_token("task:shop.mail:send", limit)
    await queue.take_token("task:shop.mail:send", limit)
    await queue.acquire_slot("user:42", "holder-1", 2, 30)
    async with served.client() as client:
        page = (await client.get("/")).text
    assert 'id="limits"' in page
    assert "task:shop.mail:send" in page
    assert "2/m" in page
    assert "empty, next in" in page
    assert "user:42" in page
    assert "1 running" in page

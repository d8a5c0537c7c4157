"""FastAPI and Litestar integrations on real backends: a handler enqueues, a worker runs the task,
a handler reads the result back.

In process (the frameworks' TestClient, the worker inside the app) and as a user runs the examples:
uvicorn on a loopback port and ``omniq worker`` in another process, sharing SQLite or Redis.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from litestar import Litestar, get, post
from litestar.params import FromPath, FromQuery
from litestar.testing import TestClient as LitestarClient
from starlette.testclient import TestClient as StarletteClient

from omniq import AsyncOmniQ, OmniQ
from omniq.backend import create_backend
from omniq.integrations.fastapi import OmniQDep, omniq_lifespan
from omniq.integrations.litestar import OmniQDep as LitestarOmniQ
from omniq.integrations.litestar import OmniQPlugin
from tests.script_runs import ROOT, ScriptPlace, open_place

pytestmark = pytest.mark.timeout(120)


async def double(x: int) -> int:
    return 2 * x


@pytest.fixture(params=["sqlite", "redis"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place(request.param, tmp_path)


def app_object(place: ScriptPlace) -> AsyncOmniQ:
    return AsyncOmniQ.from_backend(create_backend(url=place.url, project_name=place.project))


def fastapi_app(oq: Any, **options: Any) -> FastAPI:
    app = FastAPI(lifespan=omniq_lifespan(oq, **options))

    @app.post("/double")
    async def enqueue_double(x: int, omniq: OmniQDep) -> dict[str, str]:
        return {"task_id": await omniq.enqueue(double, args=(x,))}

    @app.get("/result/{task_id}")
    async def result(task_id: str, omniq: OmniQDep) -> dict[str, Any]:
        return {"result": await omniq.get_result(task_id, timeout=20)}

    return app


def litestar_app(oq: Any, **options: Any) -> Litestar:
    @post("/double", status_code=200)
    async def enqueue_double(x: FromQuery[int], omniq: LitestarOmniQ) -> dict[str, str]:
        return {"task_id": await omniq.enqueue(double, args=(x,))}

    @get("/result/{task_id:str}")
    async def result(task_id: FromPath[str], omniq: LitestarOmniQ) -> dict[str, Any]:
        return {"result": await omniq.get_result(task_id, timeout=20)}

    return Litestar([enqueue_double, result], plugins=[OmniQPlugin(oq, **options)])


def client_for(framework: str, oq: Any, **options: Any) -> Any:
    if framework == "fastapi":
        return StarletteClient(fastapi_app(oq, **options))
    return LitestarClient(litestar_app(oq, **options))


@pytest.mark.parametrize("framework", ["fastapi", "litestar"])
def test_handler_enqueues_worker_runs_handler_reads(framework: str, place: ScriptPlace) -> None:
    oq = app_object(place)
    for x in (21, 50):  # the app starts twice on one app object: it reopens
        with client_for(framework, oq, worker=True) as client:
            task_id = client.post("/double", params={"x": x}).json()["task_id"]
            assert client.get(f"/result/{task_id}").json() == {"result": 2 * x}
            assert oq.worker is not None
            assert oq.worker.is_running
        # the app's shutdown stopped the worker and closed the stores
        assert oq.worker is None


@pytest.mark.parametrize("framework", ["fastapi", "litestar"])
def test_a_factory_gives_each_start_its_own_app_object(framework: str, tmp_path: Path) -> None:
    made: list[AsyncOmniQ] = []

    def factory() -> AsyncOmniQ:
        made.append(AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path}/f.db")))
        return made[-1]

    for _ in range(2):
        with client_for(framework, factory, worker={"concurrency": 2}) as client:
            task_id = client.post("/double", params={"x": 4}).json()["task_id"]
            assert client.get(f"/result/{task_id}").json() == {"result": 8}
            assert made[-1].worker is not None
            assert made[-1].worker.concurrency == 2
    assert len(made) == 2
    assert made[0] is not made[1]


def test_fastapi_runs_the_apps_own_lifespan_inside_omniqs(tmp_path: Path) -> None:
    oq = AsyncOmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path}/l.db"))
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # OmniQ is open during the app's own startup: it can enqueue there
        seen.append(await oq.enqueue(double, args=(5,)))
        yield {"greeting": "hello"}
        seen.append("shutdown")

    app = FastAPI(lifespan=omniq_lifespan(oq, worker=True, lifespan=own))

    @app.get("/state")
    async def state(omniq: OmniQDep) -> dict[str, Any]:
        return {"same": omniq is oq, "result": await omniq.get_result(seen[0], timeout=20)}

    with StarletteClient(app) as client:
        assert client.get("/state").json() == {"same": True, "result": 10}
    assert seen[1:] == ["shutdown"]
    assert app.state.omniq is None


def test_a_handler_of_an_app_without_omniq_is_told_how_to_add_it() -> None:
    app = FastAPI()

    @app.get("/")
    async def index(omniq: OmniQDep) -> str:
        return "unreachable"

    with StarletteClient(app) as client, pytest.raises(RuntimeError, match="omniq_lifespan"):
        client.get("/")


def test_the_sync_omniq_and_bad_options_are_refused_at_construction(tmp_path: Path) -> None:
    sync_app = OmniQ.from_backend(create_backend(url=f"sqlite:///{tmp_path}/s.db"))
    try:
        with pytest.raises(TypeError, match=r"sync OmniQ.*AsyncOmniQ"):
            omniq_lifespan(sync_app)
        with pytest.raises(TypeError, match=r"sync OmniQ.*AsyncOmniQ"):
            OmniQPlugin(sync_app)
    finally:
        sync_app.close()
    with pytest.raises(TypeError, match="got str: 'sqlite://'"):
        omniq_lifespan("sqlite://")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"worker must be .* got 'yes'"):
        OmniQPlugin(AsyncOmniQ(), worker="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"dependency_key .* got 'my-omniq'"):
        OmniQPlugin(AsyncOmniQ(), dependency_key="my-omniq")


# -- the examples, as a user runs them ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the web app exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{base}/tasks/none", timeout=1)
            return
        time.sleep(0.1)
    pytest.fail(f"the web app did not answer within 30 s:\n{log.read_text()}")


@pytest.mark.parametrize("example", ["fastapi_app", "litestar_app"])
def test_example_under_uvicorn_with_a_separate_worker(example: str, place: ScriptPlace) -> None:
    env = {**place.env, "OMNIQ_TASK_QUEUE_URL": place.url, "PYTHONPATH": str(ROOT)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = [sys.executable, "-m", "uvicorn", f"examples.{example}:app", "--port", str(port)]
    worker = [sys.executable, "-m", "omniq", "worker", "--app", f"examples.{example}:oq"]
    with (
        process(web, env, place.folder / "web.log") as web_proc,
        process(worker, env, place.folder / "worker.log") as worker_proc,
    ):
        wait_until_up(base, web_proc, place.folder / "web.log")
        assert httpx.get(f"{base}/tasks/nope").status_code == 404
        task_id = httpx.post(f"{base}/count", params={"text": "to be or not to be"}).json()[
            "task_id"
        ]
        deadline = time.monotonic() + 30
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = httpx.get(f"{base}/tasks/{task_id}").json()
            if state["status"] == "success":
                break
            assert worker_proc.poll() is None, (place.folder / "worker.log").read_text()
            time.sleep(0.05)
        assert state == {"status": "success", "result": 6}, (
            place.folder / "worker.log"
        ).read_text()
    assert os.environ.get("OMNIQ_TASK_QUEUE_URL") != place.url  # the test's own env untouched

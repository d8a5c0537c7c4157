"""FastAPI: one ``AsyncOmniQ`` per app, opened and closed by the app's lifespan, handed to handlers
by FastAPI's dependency injection (``pip install omniq-tasks[fastapi]``)::

    from fastapi import FastAPI
    from omniq import AsyncOmniQ
    from omniq.integrations.fastapi import OmniQDep, omniq_lifespan

    oq = AsyncOmniQ()                      # OMNIQ_* variables, or from_config_file(...)

    @oq.task(queue_name="emails")
    async def send_welcome(address: str) -> None: ...

    app = FastAPI(lifespan=omniq_lifespan(oq))

    @app.post("/signup")
    async def signup(address: str, omniq: OmniQDep) -> dict[str, str]:
        return {"task_id": await omniq.enqueue(send_welcome, args=(address,))}

Workers run apart (``omniq worker --app myapp.tasks:oq``), or inside the web process with
``omniq_lifespan(oq, worker=True)``. The app's own lifespan, if it has one, goes in
``omniq_lifespan(oq, lifespan=...)``: OmniQ opens first and closes last, so the app's startup and
shutdown code can enqueue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from omniq.core import AsyncOmniQ
from omniq.integrations._lifespan import (
    STATE_KEY,
    AppSource,
    WorkerOption,
    check_source,
    check_worker,
    missing,
    running,
)

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Mapping[str, Any] | None]]


def omniq_lifespan(
    oq: AppSource, *, worker: WorkerOption = False, lifespan: Lifespan | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Any]]]:
    """The ``lifespan=`` of a FastAPI (or Starlette) app that runs ``oq`` (an ``AsyncOmniQ``, or a
    function returning one at each start) for as long as the app runs.

    ``worker=True`` (or a mapping of ``start_worker`` options) also serves tasks inside the web
    process; ``lifespan`` is the app's own lifespan, run inside OmniQ's. The app object is put in
    the lifespan state (``request.state.omniq``) and on ``app.state.omniq``.
    """
    source = check_source(oq)
    worker = check_worker(worker)

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with running(source, worker) as omniq:
            app.state.omniq = omniq
            try:
                if lifespan is None:
                    yield {STATE_KEY: omniq}
                else:
                    async with lifespan(app) as state:
                        yield {**(state or {}), STATE_KEY: omniq}
            finally:
                app.state.omniq = None

    return run


def get_omniq(request: Request) -> AsyncOmniQ:
    """The app's ``AsyncOmniQ`` (a dependency: ``Depends(get_omniq)``, or :data:`OmniQDep`)."""
    omniq = getattr(request.state, STATE_KEY, None)
    if not isinstance(omniq, AsyncOmniQ):
        raise missing("FastAPI", "create it with FastAPI(lifespan=omniq_lifespan(oq))")
    return omniq


#: ``async def handler(omniq: OmniQDep)``: the app's ``AsyncOmniQ``
OmniQDep = Annotated[AsyncOmniQ, Depends(get_omniq)]

__all__ = ["OmniQDep", "get_omniq", "omniq_lifespan"]

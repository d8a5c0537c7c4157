"""One application object per web app, opened and closed with the app (shared by the FastAPI and
Litestar integrations, so both behave the same way)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeAlias

from omniq._sync import SyncWrapper
from omniq.core import AsyncOmniQ

#: what an integration accepts: the app object, or a function that makes one at each start (an app
#: started twice, as tests do, then gets a fresh one each time)
AppSource: TypeAlias = AsyncOmniQ | Callable[[], AsyncOmniQ]
#: ``worker=True`` starts a worker inside the web process with the app's worker settings; a mapping
#: gives ``start_worker`` options (``{"queues": ["emails"], "concurrency": 4}``)
WorkerOption: TypeAlias = bool | Mapping[str, Any]

#: the name under which the app object is kept in the framework's state and offered to handlers
STATE_KEY = "omniq"


def check_source(source: object) -> AppSource:
    """Refuses, at app construction, what cannot serve an async web app: the sync ``OmniQ`` runs on
    OmniQ's own loop thread, so its connections cannot be used from the app's loop."""
    if isinstance(source, SyncWrapper):
        raise TypeError(
            f"{source!r} is the sync OmniQ; an async web app needs an AsyncOmniQ (its connections "
            "live on the app's event loop): use AsyncOmniQ(...) with the same arguments"
        )
    if not isinstance(source, AsyncOmniQ) and not callable(source):
        raise TypeError(
            f"expected an AsyncOmniQ or a function returning one, got {type(source).__name__}: "
            f"{source!r}"
        )
    return source


def check_worker(worker: object) -> WorkerOption:
    if isinstance(worker, (bool, Mapping)):
        return worker
    raise TypeError(
        f"worker must be True/False or a mapping of start_worker options, got {worker!r}"
    )


def _resolve(source: AppSource) -> AsyncOmniQ:
    if isinstance(source, AsyncOmniQ):
        return source
    app = source()
    if not isinstance(app, AsyncOmniQ):
        raise TypeError(f"the OmniQ factory {source!r} returned {app!r}, not an AsyncOmniQ")
    return app


@contextlib.asynccontextmanager
async def running(source: AppSource, worker: WorkerOption = False) -> AsyncIterator[AsyncOmniQ]:
    """Connects the app object (and starts its worker when asked) for the life of the block; on the
    way out the worker stops (running tasks finish or go back to their queue) and the stores close,
    whatever ended the block."""
    app = _resolve(source)
    await app.connect()
    try:
        if worker:
            options = dict(worker) if isinstance(worker, Mapping) else {}
            await app.start_worker(**options)
        yield app
    finally:
        await app.close()


def missing(framework: str, how: str) -> RuntimeError:
    """The error a handler gets when asking for the app object of an app set up without OmniQ."""
    return RuntimeError(f"this {framework} app has no OmniQ: {how}")

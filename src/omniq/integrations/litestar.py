"""Litestar: a plugin that runs one ``AsyncOmniQ`` for the life of the app and offers it to
handlers as the ``omniq`` dependency (``pip install omniq-tasks[litestar]``)::

    from litestar import Litestar, post
    from omniq import AsyncOmniQ
    from litestar.params import FromQuery
    from omniq.integrations.litestar import OmniQDep, OmniQPlugin

    oq = AsyncOmniQ()                      # OMNIQ_* variables, or from_config_file(...)

    @oq.task(queue_name="emails")
    async def send_welcome(address: str) -> None: ...

    @post("/signup")
    async def signup(address: FromQuery[str], omniq: OmniQDep) -> dict[str, str]:
        return {"task_id": await omniq.enqueue(send_welcome, args=(address,))}

    app = Litestar([signup], plugins=[OmniQPlugin(oq)])

Workers run apart (``omniq worker --app myapp.tasks:oq``), or inside the web process with
``OmniQPlugin(oq, worker=True)``. The plugin's lifespan is added after the app's own ones, so
OmniQ is open while they run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins import InitPluginProtocol

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

#: ``async def handler(omniq: OmniQDep)``: the app's ``AsyncOmniQ`` (the parameter's name is the
#: dependency's, ``omniq`` unless the plugin was given another ``dependency_key``)
OmniQDep = NamedDependency[AsyncOmniQ]


class OmniQPlugin(InitPluginProtocol):
    """Runs ``oq`` (an ``AsyncOmniQ``, or a function returning one at each start) while the app
    runs, keeps it on ``app.state.omniq`` and provides it as the dependency ``dependency_key``."""

    def __init__(
        self, oq: AppSource, *, worker: WorkerOption = False, dependency_key: str = STATE_KEY
    ) -> None:
        if not dependency_key.isidentifier():
            raise ValueError(
                f"dependency_key must be a Python identifier (a handler parameter name), "
                f"got {dependency_key!r}"
            )
        self.source = check_source(oq)
        self.worker = check_worker(worker)
        self.dependency_key = dependency_key

    def __repr__(self) -> str:
        return f"OmniQPlugin({self.source!r}, worker={self.worker!r})"

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        async with running(self.source, self.worker) as omniq:
            app.state[STATE_KEY] = omniq
            try:
                yield
            finally:
                app.state.pop(STATE_KEY, None)

    @staticmethod
    def provide(state: State) -> AsyncOmniQ:
        omniq = state.get(STATE_KEY)
        if not isinstance(omniq, AsyncOmniQ):
            raise missing("Litestar", "add OmniQPlugin(oq) to Litestar(plugins=[...])")
        return omniq

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan = [*app_config.lifespan, self.lifespan]
        app_config.dependencies[self.dependency_key] = Provide(self.provide, sync_to_thread=False)
        # handlers annotate the parameter with AsyncOmniQ, possibly under TYPE_CHECKING only
        app_config.signature_namespace.setdefault("AsyncOmniQ", AsyncOmniQ)
        return app_config


__all__ = ["OmniQDep", "OmniQPlugin"]

"""Django: OmniQ as an installed app (``pip install omniq-tasks[django]``).

``settings.py``::

    INSTALLED_APPS = [..., "omniq.integrations.django"]
    OMNIQ = {                                     # the omniq.yaml shape; absent: OMNIQ_* variables
        "project_name": "shop",
        "task_queue": "redis://localhost:6379/0",
    }

``shop/tasks.py`` (every installed app's ``tasks`` module is imported when Django starts)::

    from omniq.integrations.django import task

    @task(queue_name="emails", max_retries=3)
    def send_welcome(address: str) -> None: ...

A view (the sync API; in an async view wrap it in ``asgiref.sync.sync_to_async``)::

    from omniq.integrations.django import get_omniq
    from shop.tasks import send_welcome

    def signup(request):
        task_id = send_welcome.enqueue(request.POST["address"])
        return JsonResponse({"task_id": task_id})

    def status(request, task_id):
        return JsonResponse({"result": get_omniq().get_result(task_id, timeout=0)})

Workers: ``python manage.py omniq_worker --queues emails,default --concurrency 8``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from omniq._sync import wrap
from omniq.core import AsyncOmniQ, OmniQ, TaskFunction
from omniq.exceptions import ConfigError

P = ParamSpec("P")
R = TypeVar("R")

#: the setting that configures OmniQ (a mapping of the ``omniq.yaml`` shape)
SETTING = "OMNIQ"

_lock = threading.Lock()
_app: OmniQ | None = None


def _config() -> Mapping[str, Any] | None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    config = getattr(settings, SETTING, None)
    if config is not None and not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING} must be a dict of the omniq.yaml shape (e.g. "
            f'{{"task_queue": "redis://localhost:6379/0"}}), got {type(config).__name__}: '
            f"{config!r}"
        )
    return config


def build_async_app() -> AsyncOmniQ:
    """A new ``AsyncOmniQ`` configured by ``settings.OMNIQ`` (the ``OMNIQ_*`` variables when it
    is absent); what the worker command runs on its own loop."""
    from django.core.exceptions import ImproperlyConfigured

    config = _config()
    try:
        return AsyncOmniQ() if config is None else AsyncOmniQ.from_config(config)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"settings.{SETTING}: {exc}") from exc


def get_omniq() -> OmniQ:
    """The project's sync ``OmniQ``, built from settings on first use and kept for the process
    (rebuilt when a test changes ``OMNIQ`` with ``override_settings``)."""
    global _app
    app = _app
    if app is not None:
        return app
    with _lock:
        if _app is None:
            _app = wrap(build_async_app())
        return _app


def _async_app() -> AsyncOmniQ:
    app: AsyncOmniQ = get_omniq().async_
    return app


def reset() -> None:
    """Closes the project's ``OmniQ`` (the next :func:`get_omniq` builds a new one from the
    settings of the time)."""
    global _app
    with _lock:
        app, _app = _app, None
    if app is not None:
        app.close()


class ProjectTask(TaskFunction[P, R]):
    """A ``@task`` function of a Django project: it enqueues through whatever OmniQ the project's
    settings configure at the time of the call, not the one of import time."""

    def _app_now(self) -> AsyncOmniQ:
        return _async_app()


def task(name: str | None = None, **options: Any) -> Callable[[Callable[P, R]], ProjectTask[P, R]]:
    """``@task(queue_name=..., max_retries=...)``: registers a function as a task of the project
    (options and name as for ``oq.task``) and gives it ``.enqueue(...)``, which returns the id."""
    declare = get_omniq().task(name, **options)  # options and queue name checked here

    def decorate(func: Callable[P, R]) -> ProjectTask[P, R]:
        declared = declare(func)
        return ProjectTask(func, declared.name, declared.options, declared._app, sync=True)

    return decorate


__all__ = ["SETTING", "ProjectTask", "build_async_app", "get_omniq", "reset", "task"]

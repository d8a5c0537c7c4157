"""Which OmniQ application a command works on: ``--url``, ``--config``, ``--app`` or the settings.

Every command that touches a backend (``worker``, ``info``) takes the same four ways of naming one,
and they all end in an :class:`~omniq.AsyncOmniQ`, so a command never knows which backend is behind
it. Anything wrong with what the user typed becomes a :class:`UsageProblem` whose message names the
bad value; the command layer prints it as one line and exits 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from omniq._redact import redact_url
from omniq._sync import SyncWrapper
from omniq.backend import create_backend
from omniq.config import get_settings
from omniq.core import AsyncOmniQ
from omniq.exceptions import OmniQError


class UsageProblem(Exception):
    """Something on the command line (or in a file it names) cannot be used; exit status 2."""


class BackendProblem(Exception):
    """The backend named on the command line could not be reached or opened; exit status 1."""


@dataclass(frozen=True)
class AppSource:
    """The backend options of one command line, as typed."""

    url: str | None = None
    config: str | None = None
    app: str | None = None
    project: str | None = None
    events: bool = False

    def check(self) -> None:
        given = [
            name
            for name, value in (("--url", self.url), ("--config", self.config), ("--app", self.app))
            if value is not None
        ]
        if len(given) > 1:
            raise UsageProblem(f"{' and '.join(given)} both name a backend: give only one of them")
        if self.project is not None and (self.config is not None or self.app is not None):
            raise UsageProblem(
                "--project applies to --url and the default backend; "
                f"{'--config' if self.config else '--app'} names its own project"
            )


@dataclass
class Selected:
    """The application a command runs on, and how to show where it lives (passwords masked)."""

    app: AsyncOmniQ
    where: str
    #: the module ``--app`` imported: it stands for the script's ``__main__`` in a worker
    module: ModuleType | None = None


def load_app(source: AppSource) -> Selected:
    """Builds (or imports) the application named by ``source``; nothing is connected yet."""
    source.check()
    try:
        if source.app is not None:
            app = import_app(source.app)
            module = sys.modules[source.app.partition(":")[0]]
            return Selected(app, f"{describe(app)} (from {source.app})", module)
        if source.config is not None:
            app = AsyncOmniQ.from_config_file(source.config)
            return Selected(app, f"{describe(app)} (from {source.config})")
        if source.url is not None:
            options: dict[str, Any] = {}
            if source.project is not None:
                options["project_name"] = source.project
            backend = create_backend(url=source.url, **options)
            app = AsyncOmniQ.from_backend(backend, events=source.events)
            return Selected(app, redact_url(source.url))
        app = AsyncOmniQ(project_name=source.project)
        url = get_settings().TASK_QUEUE_URL
        shown = redact_url(url) if url else describe(app, located=True)
        return Selected(app, f"{shown} (the default: OMNIQ_* settings)")
    except UsageProblem:
        raise
    except (OmniQError, ValueError, TypeError) as exc:
        # ConfigError, BackendUnavailable (missing extra), QueueNameError, bad options of a
        # backend constructor: all of them are about what the user typed or wrote in a file
        raise UsageProblem(_message(exc)) from None


def import_app(spec: str) -> AsyncOmniQ:
    """``module:attr`` (``attr`` may be dotted) -> the AsyncOmniQ it names; a sync ``OmniQ`` is
    unwrapped. The current directory is importable, as with ``python -m``, so that
    ``omniq worker --app myproject.tasks:oq`` works from the project's root; importing the module
    also registers its ``@oq.task`` functions, which the worker then resolves by name."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise UsageProblem(f"--app {spec!r} must look like 'module:attribute' (e.g. 'tasks:oq')")
    make_cwd_importable()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise UsageProblem(
                f"--app {spec!r}: no module named {module_name!r} (looked in {os.getcwd()} "
                "and the installed packages)"
            ) from None
        raise UsageProblem(f"--app {spec!r}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise UsageProblem(
            f"--app {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageProblem(
                f"--app {spec!r}: module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if isinstance(target, SyncWrapper):
        target = target.async_
    if not isinstance(target, AsyncOmniQ):
        raise UsageProblem(
            f"--app {spec!r} is a {type(target).__name__}, not an OmniQ or AsyncOmniQ instance"
        )
    return target


def make_cwd_importable() -> None:
    """As ``python -m`` does: a project's own modules (``myapp.tasks``) import from its root even
    when ``omniq`` runs as an installed script, so ``--app`` and tasks named by import path work."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def describe(app: AsyncOmniQ, *, located: bool = False) -> str:
    """``sqlite`` or ``redis, results on postgres, events on sqlite``: the backends in use.
    ``located``: the task queue named with where it is (``SQLite at .omniq/default.db``), for
    the default configuration, which no argument of the command showed."""
    queue = app.task_queue.backend_name
    parts = [app.task_queue.server_label() if located else queue]
    if app.result_store.backend_name != queue:
        parts.append(f"results on {app.result_store.backend_name}")
    if app.event_store is not None and app.event_store.backend_name != queue:
        parts.append(f"events on {app.event_store.backend_name}")
    return ", ".join(parts)


def _message(exc: BaseException) -> str:
    from omniq._redact import redact_text

    return redact_text(str(exc) or type(exc).__name__)


__all__ = [
    "AppSource",
    "BackendProblem",
    "Selected",
    "UsageProblem",
    "describe",
    "import_app",
    "load_app",
    "make_cwd_importable",
]

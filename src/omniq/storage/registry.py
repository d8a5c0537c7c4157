"""The one list of backends. Everything that names a backend reads it: ``create_backend`` and
URL schemes (``omniq.backend``), the lazy names of ``omniq.storage``, ``omniq.queue`` and
``omniq.models.config``, and the backend types of ``OMNIQ_TASK_QUEUE_TYPE`` and YAML configs.

A backend is a package ``omniq.storage.<name>`` that exports, by the names its entry derives from
``stem``: ``Async<stem>Queue``, ``Async<stem>ResultStorage``, ``Async<stem>EventStorage``, their
sync twins without ``Async``, and the bundles ``Async<stem>Backend`` / ``<stem>Backend``; its
``config`` module holds the config structs listed in ``configs``. Adding a backend is its folder
plus one entry below (see CONTRIBUTING.md, "Adding a backend").

This module imports nothing of OmniQ, so that configuration can read it before anything else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The components every backend exports, by the suffix of their class names.
COMPONENTS = ("Queue", "ResultStorage", "EventStorage")


@dataclass(frozen=True)
class BackendEntry:
    name: str  # the type name: OMNIQ_TASK_QUEUE_TYPE, ``type:`` in YAML, create_backend(name)
    stem: str  # what its class names are built from: "Redis" -> AsyncRedisQueue, RedisBackend
    schemes: tuple[str, ...]  # URL schemes that select it
    aliases: tuple[str, ...] = ()  # other type names accepted for it
    extra: str | None = None  # pip extra that installs its driver
    configs: tuple[str, ...] = ()  # config structs defined in <package>.config

    @property
    def package(self) -> str:
        return f"omniq.storage.{self.name}"

    def class_names(self) -> list[str]:
        """Every public class its package exports: the components, their sync twins, bundles."""
        names = [f"{p}{self.stem}{suffix}" for suffix in COMPONENTS for p in ("Async", "")]
        return [*names, f"Async{self.stem}Backend", f"{self.stem}Backend"]


BACKENDS: tuple[BackendEntry, ...] = (
    BackendEntry(
        "memory",
        "Memory",
        schemes=("memory",),
        configs=("MemoryTaskQueueConfig", "MemoryResultStorageConfig", "MemoryEventStorageConfig"),
    ),
    BackendEntry(
        "sqlite",
        "SQLite",
        schemes=("sqlite",),
        aliases=("sqlite3",),
        extra="sqlite",
        configs=(
            "SQLiteConfig",
            "SQLiteTaskQueueConfig",
            "SQLiteResultStorageConfig",
            "SQLiteEventStorageConfig",
        ),
    ),
    BackendEntry(
        "postgres",
        "Postgres",
        schemes=("postgres", "postgresql"),
        aliases=("postgresql", "pg"),
        extra="postgres",
        configs=(
            "PostgresConfig",
            "PostgresTaskQueueConfig",
            "PostgresResultStorageConfig",
            "PostgresEventStorageConfig",
        ),
    ),
    BackendEntry(
        "redis",
        "Redis",
        schemes=(
            "redis",
            "rediss",
            "redis+sentinel",
            "rediss+sentinel",
            "redis+cluster",
            "rediss+cluster",
        ),
        extra="redis",
        configs=("RedisConfig",),
    ),
    BackendEntry(
        "file",
        "File",
        schemes=("file", "s3", "gs", "gcs", "az", "abfs", "abfss"),
        aliases=("obstore", "fsspec"),
        extra="cloud",
        configs=(
            "FileConfig",
            "FileTaskQueueConfig",
            "FileResultStorageConfig",
            "FileEventStorageConfig",
        ),
    ),
    BackendEntry(
        "nats",
        "NATS",
        schemes=("nats", "tls"),
        aliases=("jetstream",),
        extra="nats",
        configs=("NATSConfig",),
    ),
)

BY_NAME: Mapping[str, BackendEntry] = {
    key: entry for entry in BACKENDS for key in (entry.name, *entry.aliases)
}
BY_SCHEME: Mapping[str, BackendEntry] = {s: entry for entry in BACKENDS for s in entry.schemes}


def backend_names() -> list[str]:
    return [entry.name for entry in BACKENDS]


def find(type_name: str) -> BackendEntry | None:
    """The entry for a type name or alias, any case; None when there is none."""
    return BY_NAME.get(type_name.strip().lower())


def storage_exports() -> dict[str, tuple[str, str]]:
    """``omniq.storage``'s lazy names: public name -> (module, attribute)."""
    return {
        name: (entry.package, name)
        for entry in BACKENDS
        for name in entry.class_names()
        if not name.endswith("Backend")
    }


def queue_exports() -> dict[str, tuple[str, str]]:
    """``omniq.queue``'s ``<X>TaskQueue`` names for every backend's ``<X>Queue``."""
    out: dict[str, tuple[str, str]] = {}
    for entry in BACKENDS:
        for prefix in ("Async", ""):
            out[f"{prefix}{entry.stem}TaskQueue"] = (entry.package, f"{prefix}{entry.stem}Queue")
    return out


def config_exports() -> dict[str, tuple[str, str]]:
    """``omniq.models.config``'s re-exports of the config structs that live beside backends."""
    return {name: (f"{entry.package}.config", name) for entry in BACKENDS for name in entry.configs}


def lazy_getattr(owner: str, table: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name] = (module, attribute)`` on first use,
    so an optional driver that is not installed never breaks importing ``owner``; a missing
    driver is reported as :class:`~omniq.exceptions.BackendUnavailable` naming the pip extra."""

    def __getattr__(name: str) -> Any:
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {owner!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(target[0])
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] == "omniq":
                raise
            raise _unavailable(target[0], exc.name) from exc
        return getattr(module, target[1])

    return __getattr__


def submodule_exports(
    package: str, names: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, str]]:
    """A backend package's lazy table from ``{submodule: (name, ...)}``."""
    return {name: (f"{package}.{sub}", name) for sub, found in names.items() for name in found}


def _unavailable(module: str, missing: str) -> Exception:
    from omniq.exceptions import BackendUnavailable

    entry = next((e for e in BACKENDS if module.startswith(e.package)), None)
    if entry is None:
        return BackendUnavailable(f"{module} needs {missing!r}, which is not installed")
    hint = f": pip install 'omniq-tasks[{entry.extra}]'" if entry.extra else ""
    return BackendUnavailable(f"the {entry.name!r} backend needs {missing!r}{hint}")


__all__ = [
    "BACKENDS",
    "BY_NAME",
    "BY_SCHEME",
    "BackendEntry",
    "backend_names",
    "config_exports",
    "find",
    "lazy_getattr",
    "queue_exports",
    "storage_exports",
    "submodule_exports",
]

"""Backend bundles and the registry that maps a type name or URL scheme to one.

Adding a backend is one line in ``BACKENDS`` (and its scheme in ``SCHEMES``); nothing else in the
library names backends.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from omniq._redact import redact_url
from omniq.backend.base import AsyncBackend
from omniq.exceptions import BackendUnavailable, ConfigError

# type name -> (module, async bundle class, sync bundle class, pip extra)
BACKENDS: dict[str, tuple[str, str, str, str | None]] = {
    "memory": ("omniq.backend.memory", "AsyncMemoryBackend", "MemoryBackend", None),
    "sqlite": ("omniq.backend.sqlite", "AsyncSQLiteBackend", "SQLiteBackend", "sqlite"),
    "postgres": ("omniq.backend.postgres", "AsyncPostgresBackend", "PostgresBackend", "postgres"),
    "redis": ("omniq.backend.redis", "AsyncRedisBackend", "RedisBackend", "redis"),
    "nats": ("omniq.backend.nats", "AsyncNATSBackend", "NATSBackend", "nats"),
    "file": ("omniq.backend.file", "AsyncFileBackend", "FileBackend", "cloud"),
}
ALIASES = {"postgresql": "postgres", "pg": "postgres", "sqlite3": "sqlite"}
# URL scheme -> type name
SCHEMES = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "redis": "redis",
    "rediss": "redis",
    "redis+sentinel": "redis",
    "rediss+sentinel": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "nats": "nats",
    "tls": "nats",
    "file": "file",
    "s3": "file",
    "gs": "file",
    "gcs": "file",
    "az": "file",
    "abfs": "file",
    "azure": "file",
}


def normalize_type(type_name: str) -> str:
    name = ALIASES.get(type_name.lower(), type_name.lower())
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend type {type_name!r}: choose one of {sorted(BACKENDS)}")
    return name


def backend_class(type_name: str, *, sync: bool = False) -> type[Any]:
    """The bundle class for a backend type, importing its module (and driver) only now."""
    name = normalize_type(type_name)
    module_name, async_name, sync_name, extra = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise BackendUnavailable(
                f"the {name!r} backend is not part of this OmniQ version yet"
            ) from exc
        raise BackendUnavailable(
            f"the {name!r} backend needs {exc.name!r}: pip install 'omniq-tasks[{extra}]'"
        ) from exc
    cls: type[Any] = getattr(module, sync_name if sync else async_name)
    return cls


def type_from_url(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigError(f"URL {redact_url(url)!r} has no scheme (e.g. redis://, sqlite:///)")
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ConfigError(
            f"unknown URL scheme {scheme!r} in {redact_url(url)!r}: use one of {sorted(SCHEMES)}"
        ) from None


def create_backend(
    type_name: str | None = None, url: str | None = None, **options: Any
) -> AsyncBackend:
    """An async backend bundle from a type name and/or a URL (``redis://...``, ``memory://``)."""
    if type_name is None and url is None:
        raise ConfigError("a backend needs a type or a URL")
    name = normalize_type(type_name) if type_name else type_from_url(url or "")
    cls = backend_class(name)
    if url is not None:
        backend: AsyncBackend = cls.from_url(url, **options)
        return backend
    created: AsyncBackend = cls(**options)
    return created


def __getattr__(name: str) -> Any:
    """``from omniq.backend import RedisBackend`` imports the Redis module on demand."""
    for type_name, (_, async_name, sync_name, _) in BACKENDS.items():
        if name in (async_name, sync_name):
            return backend_class(type_name, sync=name == sync_name)
    raise AttributeError(f"module 'omniq.backend' has no attribute {name!r}")


__all__ = [
    "ALIASES",
    "BACKENDS",
    "SCHEMES",
    "AsyncBackend",
    "backend_class",
    "create_backend",
    "normalize_type",
    "type_from_url",
]

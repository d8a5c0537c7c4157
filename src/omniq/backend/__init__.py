"""Backend bundles and ``create_backend``: a type name or URL scheme to a bundle.

Which backends exist, their aliases, URL schemes and pip extras are read from the one registry,
:mod:`omniq.storage.registry`; nothing here names a backend.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from omniq._redact import redact_url
from omniq.backend.base import AsyncBackend
from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.storage import registry
from omniq.storage.registry import BackendEntry


def normalize_type(type_name: str) -> str:
    """The backend name for a type name or alias (``pg`` -> ``postgres``)."""
    entry = registry.find(type_name)
    if entry is None:
        raise ConfigError(
            f"unknown backend type {type_name!r}: choose one of {registry.backend_names()}"
        )
    return entry.name


def backend_class(type_name: str, *, sync: bool = False) -> type[Any]:
    """The bundle class for a backend type, importing its module (and driver) only now."""
    entry = registry.BY_NAME[normalize_type(type_name)]
    module_name = f"{entry.package}.backend"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "omniq":
            raise
        hint = f": pip install 'omniq-tasks[{entry.extra}]'" if entry.extra else ""
        raise BackendUnavailable(f"the {entry.name!r} backend needs {exc.name!r}{hint}") from exc
    cls: type[Any] = getattr(module, _bundle_name(entry, sync=sync))
    return cls


def _bundle_name(entry: BackendEntry, *, sync: bool) -> str:
    return f"{'' if sync else 'Async'}{entry.stem}Backend"


def type_from_url(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ConfigError(f"URL {redact_url(url)!r} has no scheme (e.g. redis://, sqlite:///)")
    entry = registry.BY_SCHEME.get(scheme)
    if entry is None:
        raise ConfigError(
            f"unknown URL scheme {scheme!r} in {redact_url(url)!r}: "
            f"use one of {sorted(registry.BY_SCHEME)}"
        )
    return entry.name


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
    for entry in registry.BACKENDS:
        for sync in (False, True):
            if name == _bundle_name(entry, sync=sync):
                return backend_class(entry.name, sync=sync)
    raise AttributeError(f"module 'omniq.backend' has no attribute {name!r}")


__all__ = [
    "AsyncBackend",
    "backend_class",
    "create_backend",
    "normalize_type",
    "type_from_url",
]

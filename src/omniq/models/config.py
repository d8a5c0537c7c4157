"""Typed configuration objects (``msgspec.Struct``).

Each component accepts direct parameters, one of these structs (``from_config``), a dict
(``from_dict``) or a YAML file (``from_config_file``). A backend's own structs (``RedisConfig``,
``PostgresConfig``, ...) live beside it and are re-exported here. Reprs never show passwords.
"""

from __future__ import annotations

from typing import Any

import msgspec

from omniq._redact import redact_value
from omniq.storage.registry import config_exports, lazy_getattr


class ConfigStruct(msgspec.Struct, kw_only=True):
    """Base of every config struct: a redacting repr and a plain-dict view."""

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__struct_fields__}

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f}={redact_value(f, getattr(self, f))!r}" for f in self.__struct_fields__
        )
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__

    def __rich_repr__(self) -> Any:  # keep rich/pretty printers on the redacted view too
        for f in self.__struct_fields__:
            yield f, redact_value(f, getattr(self, f))


class TaskQueueConfig(ConfigStruct):
    """Options every task queue understands, whatever its backend."""

    project_name: str = "default"
    queues: list[str] | None = None
    lease_timeout: float | None = None
    secret_key: str | None = None
    allow_dill: bool | None = None


class ComponentSpec(ConfigStruct):
    """One component of an ``OmniQConfig``: a backend ``type`` (or a ``url``) and its options."""

    type: str | None = None
    url: str | None = None
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class WorkerSpec(ConfigStruct):
    type: str = "async"
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class OmniQConfig(ConfigStruct):
    """The whole application, as in the YAML example of seeds/003."""

    project_name: str = "default"
    task_queue: ComponentSpec | None = None
    result_store: ComponentSpec | None = None
    event_store: ComponentSpec | None = None
    worker: WorkerSpec | None = None
    secret_key: str | None = None


# the config structs of each backend live beside it (``omniq.storage.<name>.config``); these
# names stay importable from here, loaded on first use
_BESIDE_BACKENDS = config_exports()
__getattr__ = lazy_getattr(__name__, _BESIDE_BACKENDS)

__all__ = [
    "ComponentSpec",
    "ConfigStruct",
    "OmniQConfig",
    "TaskQueueConfig",
    "WorkerSpec",
    *_BESIDE_BACKENDS,
]

"""Components (task queue, result storage, event storage) picked from a backend, a spec of the
configuration, or the ``OMNIQ_*`` settings: what the façade and the seeds' standalone forms are
built from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omniq._redact import redact_url
from omniq._sync import SyncWrapper, unwrap, wrap
from omniq.backend import AsyncBackend, create_backend
from omniq.config import get_settings
from omniq.config.env import setting_source
from omniq.exceptions import ConfigError
from omniq.models.config import ComponentSpec


def _component_from_spec(
    kind: str, spec: ComponentSpec | Mapping[str, Any], project_name: str
) -> Any:
    if isinstance(spec, Mapping):
        spec = ComponentSpec(
            type=spec.get("type"), url=spec.get("url"), config=dict(spec.get("config") or {})
        )
    options = {"project_name": project_name, **spec.config}
    backend = create_backend(spec.type, spec.url, **options)
    return _component_of(backend, kind)


def _component_of(backend: AsyncBackend, kind: str, **overrides: Any) -> Any:
    if kind == "task_queue":
        return backend.create_task_queue(**overrides) if overrides else backend.queue
    if kind == "result_store":
        return backend.result_storage
    return backend.event_storage


_SETTING_PREFIX = {
    "task_queue": "TASK_QUEUE",
    "result_store": "RESULT_STORAGE",
    "event_store": "EVENT_STORAGE",
}


def _from_settings(kind: str, project_name: str) -> Any | None:
    s = get_settings()
    type_name, url = {
        "task_queue": (s.TASK_QUEUE_TYPE, s.TASK_QUEUE_URL),
        "result_store": (s.RESULT_STORAGE_TYPE, s.RESULT_STORAGE_URL),
        "event_store": (s.EVENT_STORAGE_TYPE, s.EVENT_STORAGE_URL),
    }[kind]
    if type_name is None and url is None:
        return None
    try:
        return _component_from_spec(
            kind, ComponentSpec(type=type_name if url is None else None, url=url), project_name
        )
    except ConfigError as exc:
        # the variable, not just the value: it was set far from the code that fails on it
        setting = f"{_SETTING_PREFIX[kind]}_{'TYPE' if url is None else 'URL'}"
        value = type_name if url is None else redact_url(url)
        raise ConfigError(f"{setting_source(setting)}={value!r}: {exc}") from None


def _pick(backend: Any, kind: str, **overrides: Any) -> Any:
    is_sync = isinstance(backend, SyncWrapper)
    component = _component_of(unwrap(backend), kind, **overrides)
    return wrap(component) if is_sync else component

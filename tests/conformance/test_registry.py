"""The one list of backends: every place that names a backend agrees with it."""

from __future__ import annotations

import pytest

import omniq.models.config
import omniq.queue
import omniq.storage
from omniq.backend import backend_class, create_backend, normalize_type, type_from_url
from omniq.config import load_settings
from omniq.exceptions import ConfigError
from omniq.storage import registry
from omniq.storage.base import BaseEventStorage, BaseResultStorage, BaseTaskQueue
from omniq.storage.registry import BACKENDS, BackendEntry

from .backends import BACKENDS as CONFORMANCE_BACKENDS

ENTRIES = [pytest.param(entry, id=entry.name) for entry in BACKENDS]


def test_every_backend_has_a_conformance_fixture() -> None:
    # a backend may run in several set-ups (redis, redis-sentinel, redis-cluster)
    tested = {spec.name.partition("-")[0] for spec in CONFORMANCE_BACKENDS}
    assert tested == {entry.name for entry in BACKENDS}


@pytest.mark.parametrize("entry", ENTRIES)
def test_names_aliases_and_schemes_select_the_backend(entry: BackendEntry) -> None:
    for name in (entry.name, entry.name.upper(), *entry.aliases):
        assert normalize_type(name) == entry.name
        assert entry.name == load_settings({"OMNIQ_TASK_QUEUE_TYPE": name}).TASK_QUEUE_TYPE
    for scheme in entry.schemes:
        assert type_from_url(f"{scheme}://somewhere/x") == entry.name


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_bundle_and_the_lazy_names_come_from_the_backend_package(entry: BackendEntry) -> None:
    bundle = backend_class(entry.name)
    assert bundle.__name__ == f"Async{entry.stem}Backend"
    assert backend_class(entry.name, sync=True).__name__ == f"{entry.stem}Backend"
    assert issubclass(bundle.task_queue_class, BaseTaskQueue)
    assert issubclass(bundle.result_storage_class, BaseResultStorage)
    assert bundle.event_storage_class is not None
    assert issubclass(bundle.event_storage_class, BaseEventStorage)
    assert getattr(omniq.storage, f"Async{entry.stem}Queue") is bundle.task_queue_class
    assert getattr(omniq.queue, f"Async{entry.stem}TaskQueue") is bundle.task_queue_class
    for name in entry.class_names():
        assert getattr(omniq.storage, name, None) is not None or name.endswith("Backend")
        assert getattr(__import__(entry.package, fromlist=[name]), name).__name__ == name
    for name in entry.configs:
        config = getattr(omniq.models.config, name)
        assert config.__module__ == f"{entry.package}.config"


def test_pg_works_everywhere_a_backend_type_is_read() -> None:
    assert type(create_backend("pg")).__name__ == "AsyncPostgresBackend"
    assert load_settings({"OMNIQ_TASK_QUEUE_TYPE": "pg"}).TASK_QUEUE_TYPE == "postgres"
    assert load_settings({"OMNIQ_RESULT_STORAGE_TYPE": "postgresql"}).RESULT_STORAGE_TYPE == (
        "postgres"
    )


# Names users reach for that OmniQ has no code for: refused everywhere a backend is named, and
# never advertised (the registry is the only truth; nats and file joined it with their code).
@pytest.mark.parametrize("name", ["kafka", "rabbitmq", "sqs"])
def test_a_backend_without_code_is_not_advertised(name: str) -> None:
    assert registry.find(name) is None
    with pytest.raises(ConfigError, match=repr(name)):
        create_backend(name)
    with pytest.raises(ConfigError, match="OMNIQ_TASK_QUEUE_TYPE"):
        load_settings({"OMNIQ_TASK_QUEUE_TYPE": name})
    with pytest.raises(ConfigError, match="unknown URL scheme"):
        create_backend(url=f"{name}://somewhere")
    assert not hasattr(omniq.storage, f"Async{name.upper()}Queue")

"""Specification of secret redaction in URLs, free text and config reprs."""

from __future__ import annotations

import pytest

from omniq._redact import redact_text, redact_url
from omniq.models.config import (
    ComponentSpec,
    ConfigStruct,
    MemoryTaskQueueConfig,
    OmniQConfig,
    TaskQueueConfig,
)

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://user:s3cr3t-Pa55@cache.local:6379/0", "redis://user:***@cache.local:6379/0"),
        ("rediss://:s3cr3t-Pa55@cache.local:6380/2", "rediss://:***@cache.local:6380/2"),
        (
            "postgresql://omniq:s3cr3t-Pa55@db.local:5432/tasks?sslmode=require",
            "postgresql://omniq:***@db.local:5432/tasks?sslmode=require",
        ),
        ("postgresql://omniq:s3cr3t-Pa55@db.local/tasks", "postgresql://omniq:***@db.local/tasks"),
        ("nats://user:s3cr3t-Pa55@nats.local:4222", "nats://user:***@nats.local:4222"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_hides_a_password_containing_an_at_sign() -> None:
    redacted = redact_url("redis://user:p@ss@cache.local:6379/0")

    assert redacted == "redis://user:***@cache.local:6379/0"


@pytest.mark.parametrize(
    "url", ["redis://cache.local:6379/0", "postgresql://omniq@db.local/tasks", "sqlite:///tmp/x.db"]
)
def test_redact_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_keeps_an_ipv6_host_in_brackets() -> None:
    redacted = redact_url("postgresql://omniq:s3cr3t-Pa55@[::1]:5432/tasks")

    assert redacted == "postgresql://omniq:***@[::1]:5432/tasks"


@pytest.mark.parametrize(
    "url",
    ["redis://user:s3cr3t-Pa55@cache.local:port/0", "redis://user:s3cr3t-Pa55@cache.local:99999/0"],
    ids=["non-numeric-port", "port-out-of-range"],
)
def test_redact_url_never_raises_and_still_hides_the_password(url: str) -> None:
    redacted = redact_url(url)

    assert SECRET not in redacted
    assert "cache.local" in redacted


def test_redact_text_masks_every_url_inside_a_sentence() -> None:
    text = (
        "cannot connect to redis://user:s3cr3t-Pa55@cache.local:6379/0 "
        "nor postgresql://omniq:other-pw@db.local/tasks, giving up"
    )

    redacted = redact_text(text)

    assert SECRET not in redacted
    assert "other-pw" not in redacted
    assert redacted == (
        "cannot connect to redis://user:***@cache.local:6379/0 "
        "nor postgresql://omniq:***@db.local/tasks, giving up"
    )


def test_redact_text_leaves_text_without_credentials_unchanged() -> None:
    text = "connected to redis://cache.local:6379/0 at 12:00"

    assert redact_text(text) == text


def test_task_queue_config_repr_hides_the_secret_key() -> None:
    config = TaskQueueConfig(secret_key=SECRET, project_name="shop")

    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert "shop" in repr(config)


def test_memory_config_repr_hides_the_secret_key() -> None:
    assert SECRET not in repr(MemoryTaskQueueConfig(secret_key=SECRET, name="q"))


def test_omniq_config_repr_hides_passwords_in_nested_urls_options_and_keys() -> None:
    config = OmniQConfig(
        secret_key=SECRET,
        task_queue=ComponentSpec(type="redis", url=f"redis://user:{SECRET}@cache.local:6379/0"),
        result_store=ComponentSpec(
            type="postgres", config={"password": SECRET, "host": "db.local"}
        ),
        event_store=ComponentSpec(config={"dsn": f"postgresql://u:{SECRET}@db.local/e"}),
    )

    shown = repr(config)

    assert SECRET not in shown
    assert "cache.local" in shown
    assert "db.local" in shown


class ServersConfig(ConfigStruct):
    servers: list[str]
    api_token: str | None = None
    options: dict[str, object] | None = None


def test_a_config_subclass_repr_hides_passwords_in_a_list_of_urls() -> None:
    config = ServersConfig(servers=[f"nats://u:{SECRET}@n1:4222", f"nats://u:{SECRET}@n2:4222"])

    assert SECRET not in repr(config)


def test_a_config_subclass_repr_hides_secret_looking_fields() -> None:
    config = ServersConfig(
        servers=[], api_token=SECRET, options={"nested": {"private_key": SECRET}}
    )

    assert SECRET not in repr(config)

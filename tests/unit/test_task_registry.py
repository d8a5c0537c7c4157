"""Specification of the task registry: registered names and import paths to callables."""

from __future__ import annotations

import importlib
import os.path
from collections.abc import Callable
from typing import Any

import pytest

from omniq.exceptions import FunctionNotFound
from omniq.registry import TaskRegistry


def send_email(to: str) -> str:
    return f"sent to {to}"


def send_sms(to: str) -> str:
    return f"texted {to}"


def test_a_registered_name_resolves_to_its_function() -> None:
    reg = TaskRegistry()

    reg.register("send_email", send_email)

    assert reg.resolve("send_email") is send_email
    assert reg.get("send_email") is send_email
    assert reg.names() == ["send_email"]


def test_registered_options_are_kept_per_name() -> None:
    reg = TaskRegistry()

    reg.register("send_email", send_email, {"max_retries": 5})

    assert reg.options("send_email") == {"max_retries": 5}
    assert reg.options("unknown") == {}


def test_registering_the_same_function_twice_is_allowed() -> None:
    reg = TaskRegistry()
    reg.register("send_email", send_email)

    reg.register("send_email", send_email)

    assert reg.resolve("send_email") is send_email


def test_registering_a_name_for_another_function_is_refused_naming_both() -> None:
    reg = TaskRegistry()
    reg.register("notify", send_email)

    with pytest.raises(ValueError, match="'notify'") as excinfo:
        reg.register("notify", send_sms)

    assert "send_email" in str(excinfo.value)
    assert reg.resolve("notify") is send_email


@pytest.mark.parametrize("ref", ["os.path:join", "os.path.join"])
def test_an_import_path_resolves(ref: str) -> None:
    assert TaskRegistry().resolve(ref) is os.path.join


def test_a_nested_qualname_resolves() -> None:
    assert TaskRegistry().resolve("os:path.join") is os.path.join


def test_resolving_an_import_path_caches_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = TaskRegistry()
    imports: list[str] = []
    real_import: Callable[..., Any] = importlib.import_module

    def counting_import(name: str, package: str | None = None) -> Any:
        imports.append(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", counting_import)

    first = reg.resolve("os.path:join")
    second = reg.resolve("os.path:join")

    assert first is second is os.path.join
    assert imports == ["os.path"]


@pytest.mark.parametrize(
    "ref",
    [
        "no_such_function",
        "no_such_module_xyz:func",
        "os.path:no_such_function",
        "__main__:main",
        "pkg.mod:outer.<locals>.inner",
        "os:sep",  # exists, but is not callable
        ":func",  # empty module name
        "..relative:func",  # relative import
    ],
)
def test_an_unresolvable_reference_raises_function_not_found_naming_it(ref: str) -> None:
    with pytest.raises(FunctionNotFound) as excinfo:
        TaskRegistry().resolve(ref)

    assert repr(ref) in str(excinfo.value)


def test_is_importable_as_tells_whether_a_name_leads_back_to_the_function() -> None:
    reg = TaskRegistry()

    assert reg.is_importable_as(send_email, f"{__name__}:send_email")
    assert not reg.is_importable_as(send_sms, f"{__name__}:send_email")
    assert not reg.is_importable_as(send_email, "no_such_module_xyz:send_email")

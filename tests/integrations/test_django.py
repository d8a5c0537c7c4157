"""The Django app on real backends: a view enqueues, ``manage.py omniq_worker`` in another process
runs the task, a view reads the result back; settings-driven configuration and its errors.

The example project (examples/django_site) is configured in this process with
``settings.configure`` from its settings module, and each test points ``OMNIQ`` at its own place
with ``override_settings`` (which rebuilds the project's OmniQ).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from omniq.integrations import django as omniq_django
from omniq.integrations.django.apps import task_modules
from tests.script_runs import ROOT, ScriptPlace, open_place

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def django_site() -> None:
    if not settings.configured:
        from examples.django_site import settings as site

        settings.configure(**{k: getattr(site, k) for k in dir(site) if k.isupper()})
        django.setup()


@pytest.fixture(params=["sqlite", "redis"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place(request.param, tmp_path)


@pytest.fixture
def configured(place: ScriptPlace) -> Iterator[ScriptPlace]:
    with override_settings(OMNIQ={"project_name": place.project, "task_queue": place.url}):
        yield place
    assert omniq_django._app is None  # leaving the override closed the project's OmniQ


def test_tasks_modules_of_installed_apps_are_found() -> None:
    assert task_modules == ["examples.django_site.shop.tasks"]
    from omniq.registry import registry

    assert registry.get("examples.django_site.shop.tasks:word_count") is not None


def test_a_view_enqueues_the_worker_command_runs_a_view_reads(configured: ScriptPlace) -> None:
    env = {
        **configured.env,
        "SHOP_OMNIQ_URL": configured.url,
        "SHOP_OMNIQ_PROJECT": configured.project,
    }
    log = configured.folder / "worker.log"
    manage = [
        sys.executable,
        "examples/django_site/manage.py",
        "omniq_worker",
        "--concurrency",
        "2",
    ]
    with log.open("wb") as out:
        worker = subprocess.Popen(manage, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        client = Client()
        assert client.get("/tasks/nope").status_code == 404
        task_id = client.post("/count", {"text": "to be or not to be"}).json()["task_id"]
        state: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = client.get(f"/tasks/{task_id}").json()
            if state["status"] == "success":
                break
            assert worker.poll() is None, log.read_text()
            time.sleep(0.05)
        assert state == {"status": "success", "result": 6}, log.read_text()
        assert omniq_django.get_omniq().get_result(task_id, timeout=5) == 6
    finally:
        worker.terminate()
        code = worker.wait(20)
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "from settings.OMNIQ" in text
    assert "processed 1 (succeeded 1" in text


def test_a_worker_inside_the_process_serves_the_views(configured: ScriptPlace) -> None:
    oq = omniq_django.get_omniq()
    oq.start_worker()
    task_id = Client().post("/count", {"text": "a b c"}).json()["task_id"]
    assert oq.get_result(task_id, timeout=20) == 3
    assert Client().get(f"/tasks/{task_id}").json() == {"status": "success", "result": 3}


def test_settings_errors_name_the_setting_and_the_bad_value() -> None:
    with (
        override_settings(OMNIQ="redis://localhost:6379/0"),
        pytest.raises(ImproperlyConfigured, match=r"settings.OMNIQ must be a dict .* got str"),
    ):
        omniq_django.get_omniq()
    with (
        override_settings(OMNIQ={"task_queue": "sqlite://", "worker": {"typo": 1}}),
        pytest.raises(ImproperlyConfigured, match=r"settings\.OMNIQ: .*'typo'"),
    ):
        omniq_django.get_omniq()


def test_the_worker_command_refuses_a_bad_option_by_name(place: ScriptPlace) -> None:
    env = {**place.env, "SHOP_OMNIQ_URL": place.url, "SHOP_OMNIQ_PROJECT": place.project}
    done = subprocess.run(
        [sys.executable, "examples/django_site/manage.py", "omniq_worker", "--type", "nope"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--type 'nope' is not an available worker type" in done.stderr

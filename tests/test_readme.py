"""README's "Use" section is code a newcomer copies: its scripts run and its YAML loads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from omniq import AsyncOmniQ
from tests.script_runs import ROOT, ScriptPlace, open_place

README = (ROOT / "README.md").read_text()
USE = README[README.index("## Use\n") : README.index("\n## ", README.index("## Use\n") + 1)]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", USE, flags=re.DOTALL)


@pytest.fixture
def sqlite_place(tmp_path: Path) -> Iterator[ScriptPlace]:
    yield from open_place("sqlite", tmp_path)


@pytest.mark.parametrize("index", [0, 1], ids=["async-script", "sync-script"])
def test_the_readme_scripts_run_and_print_the_result(sqlite_place: ScriptPlace, index: int) -> None:
    done = sqlite_place.run(blocks("python")[index])

    assert done.stdout.strip() == "5"


def test_the_readme_yaml_builds_the_application_it_describes() -> None:
    (text,) = blocks("yaml")

    oq = AsyncOmniQ.from_config(yaml.safe_load(text))

    assert oq.project_name == "shop"
    assert oq.task_queue.backend_name == "postgres"
    assert oq.task_queue.queues == ["images", "default"]
    assert oq.task_queue.default_queue == "default"
    assert oq.result_store.backend_name == "redis"
    assert oq.event_store is not None
    assert oq.event_store.backend_name == "sqlite"
    assert oq.worker_type == "thread_pool"
    assert oq.worker_config == {"max_workers": 10}


def test_the_readme_task_module_runs_under_omniq_worker_app(sqlite_place: ScriptPlace) -> None:
    import subprocess
    import sys

    tasks_py, producer_py = blocks("python")[2:4]
    sqlite_place.env["OMNIQ_TASK_QUEUE_URL"] = sqlite_place.url
    # the module as written, configured by OMNIQ_* instead of a file with a PostgreSQL server
    sqlite_place.write(
        "tasks.py",
        tasks_py.replace('OmniQ.from_config_file("omniq.yaml")', "OmniQ()").replace(
            "    ...\n", ""
        ),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "omniq", "worker", "--app", "tasks:oq", "--queues", "images"],
        cwd=sqlite_place.folder,
        env=sqlite_place.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        done = sqlite_place.run_unchecked(producer_py + "oq.close()\n", name="producer.py")
    finally:
        worker.terminate()
        log, _ = worker.communicate(timeout=30)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- worker\n{log}"
    assert done.stdout.strip() == "cat.png at 200px"

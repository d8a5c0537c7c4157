"""Every configuration error names its place (issue 14, item 6): the file and key path of a typo
inside a backend's ``config:`` section, with the option meant; the variable of a malformed
``OMNIQ_*_URL``; ``omniq info`` does not create the database it is asked about; the CLI's help
does not cut a sentence and lists only backends that exist."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from omniq import AsyncOmniQ
from omniq.cli import app as typer_app
from omniq.config import load_config, load_settings, reload_settings
from omniq.exceptions import ConfigError

runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omniq.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("section", "typo", "meant"),
    [
        ("type: sqlite", "base_dri: /tmp/x", "base_dir"),
        ("url: postgresql://postgres@127.0.0.1/test", "min_sise: 3", "min_size"),
        ("url: redis://127.0.0.1:6379/0", "max_conections: 3", "max_connections"),
        ("type: memory", "max_event: 10", "max_events"),
    ],
)
def test_a_typo_in_a_backend_config_names_file_key_path_and_the_option_meant(
    tmp_path: Path, section: str, typo: str, meant: str
) -> None:
    path = write(
        tmp_path,
        f"""
        project_name: demo
        event_store:
          {section}
          config:
            {typo}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    key = typo.split(":")[0]
    assert str(caught.value) == (
        f"config file {path}: event_store.config: unknown key {key!r}; did you mean {meant!r}?"
    )


def test_from_config_file_reports_the_typo_before_building_anything(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        task_queue:
          type: sqlite
          config:
            base_dri: somewhere
        """,
    )
    with pytest.raises(ConfigError, match=r"task_queue\.config: unknown key 'base_dri'; did you"):
        AsyncOmniQ.from_config_file(str(path))


def test_a_bad_value_in_a_backend_config_names_the_file_and_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        task_queue:
          type: sqlite
          config:
            busy_timeout: -1
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value).startswith(f"config file {path}: task_queue.config: busy_timeout")


def test_a_typo_in_the_worker_config_names_the_option_meant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        worker:
          type: thread
          config:
            max_worker: 3
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (
        f"config file {path}: worker.config: unknown key 'max_worker'; did you mean 'max_workers'?"
    )


def test_options_that_exist_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        task_queue:
          type: sqlite
          config:
            base_dir: {tmp_path}
            busy_timeout: 2
        worker:
          type: thread
          config:
            max_workers: 3
        """,
    )
    config = load_config(str(path))
    assert config.task_queue is not None
    assert config.task_queue.config == {"base_dir": str(tmp_path), "busy_timeout": 2}


# --- the environment -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("localhost:6379", "is not a URL: it needs a scheme"),
        ("redis//localhost", "is not a URL: it needs a scheme"),
        ("postgresql://u:secret@db:fivethousand/x", "has a port that is not a number"),
    ],
)
def test_a_malformed_url_variable_is_named(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"OMNIQ_TASK_QUEUE_URL": value})
    message = str(caught.value)
    assert message.startswith("OMNIQ_TASK_QUEUE_URL=")
    assert reason in message
    assert "secret" not in message


def test_the_alias_variable_is_the_one_named() -> None:
    with pytest.raises(ConfigError, match=r"^OMNIQ_TASK_STORAGE_URL='nope' is not a URL"):
        load_settings({"OMNIQ_TASK_STORAGE_URL": "nope"})


def test_node_lists_are_left_to_the_backend() -> None:
    url = "redis+sentinel://h1:26379,h2:26379/mymaster"
    assert url == load_settings({"OMNIQ_TASK_QUEUE_URL": url}).TASK_QUEUE_URL


def test_an_unknown_scheme_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIQ_RESULT_STORAGE_URL", "mysql://db/x")
    reload_settings()
    try:
        with pytest.raises(ConfigError, match=r"^OMNIQ_RESULT_STORAGE_URL='mysql://db/x': unknown"):
            AsyncOmniQ(project_name="x")
    finally:
        monkeypatch.delenv("OMNIQ_RESULT_STORAGE_URL")
        reload_settings()


# --- the command line ----------------------------------------------------------------------------
def test_info_on_a_database_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "not" / "there" / "omniq.db"
    result = runner.invoke(typer_app, ["info", "--url", f"sqlite:///{target}", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "not created"
    assert data["health"]["database"]["path"] == str(target)
    assert (data["queues"], data["workers"]) == ({}, [])
    table = runner.invoke(typer_app, ["info", "--url", f"sqlite:///{target}"])
    assert "not created" in table.stdout
    assert "no live workers" in table.stdout
    assert not (tmp_path / "not").exists()


def _commands(group: typer.Typer) -> dict[str, str]:
    command = typer.main.get_command(group)
    assert isinstance(command, typer.core.TyperGroup)
    return {name: cmd.help or "" for name, cmd in command.commands.items()}


def test_each_command_summary_is_shown_whole_on_one_line() -> None:
    result = runner.invoke(typer_app, ["--help"], env={"COLUMNS": "250"}, terminal_width=250)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name, help_text in _commands(typer_app).items():
        summary = " ".join(inspect.cleandoc(help_text).split("\n\n")[0].split())
        assert any(summary in line for line in lines), (name, summary, result.output)


def test_url_help_lists_only_backends_that_exist() -> None:
    result = runner.invoke(typer_app, ["info", "--help"], env={"COLUMNS": "250"})
    text = " ".join(result.output.split())
    for present in ("memory://", "sqlite:///path.db", "postgresql://", "redis://"):
        assert present in text
    for name in ("nats", "file"):
        try:
            from omniq.backend import backend_class

            backend_class(name)
        except Exception:
            assert f"{name}://" not in text

"""Settings, ``OMNIQ_*`` overrides and configuration files (omniq.config)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest

import omniq.config
from omniq.config import (
    Settings,
    get_settings,
    load_config,
    load_settings,
    load_yaml,
    reload_settings,
)
from omniq.config import env as env_module
from omniq.config import settings as settings_module
from omniq.exceptions import ConfigError
from omniq.models.config import ComponentSpec, OmniQConfig, WorkerSpec

SEED_003_YAML = """\
project_name: my_project
task_queue:
  type: file
  config:
    base_dir: some/path
    queues:
      - high
      - medium
      - low

result_store:
  type: sqlite
  config:
    base_dir: some/path

event_store:
  type: postgres
  config:
    host: localhost
    port: 5432
    username: postgres
    password: secret

worker:
  type: thread_pool
  config:
    max_workers: 10
"""

#: The seed's example with its task queue on a backend this tree has (the seed names "file").
SEED_003_ON_SQLITE = SEED_003_YAML.replace("  type: file\n", "  type: sqlite\n")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OMNIQ_* variable of the surrounding shell leaks in, and the cache is restored after."""
    for name in list(os.environ):
        if name.startswith("OMNIQ_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(env_module, "_cached", None)


def _setting_constants() -> dict[str, Any]:
    return {k: v for k, v in vars(settings_module).items() if k.isupper() and not k.startswith("_")}


# --- settings.py and Settings agree ------------------------------------------------------------
def test_every_settings_constant_is_a_settings_field() -> None:
    assert set(_setting_constants()) == set(Settings.__struct_fields__)


def test_settings_defaults_equal_the_constants() -> None:
    defaults = Settings()
    for name, value in _setting_constants().items():
        assert getattr(defaults, name) == value, name


def test_constants_import_without_prefix() -> None:
    from omniq.config.settings import BASE_DIR, PROJECT_NAME, TASK_QUEUE_TYPE

    assert (BASE_DIR, PROJECT_NAME, TASK_QUEUE_TYPE) == (".omniq", "default", "sqlite")


def test_empty_environment_gives_the_defaults() -> None:
    assert load_settings({}) == Settings()


# --- every variable of seeds 003 and 004 -------------------------------------------------------
OVERRIDES: list[tuple[str, str, str, Any]] = [
    # (variable, raw value, setting, expected typed value)
    ("OMNIQ_PROJECT_NAME", "billing", "PROJECT_NAME", "billing"),
    ("OMNIQ_BASE_DIR", "/var/lib/omniq", "BASE_DIR", "/var/lib/omniq"),
    ("OMNIQ_LOG_LEVEL", "DEBUG", "LOG_LEVEL", "DEBUG"),
    ("OMNIQ_DISABLE_LOGGING", "1", "DISABLE_LOGGING", True),
    (
        "OMNIQ_COMPONENT_LOG_LEVELS",
        '{"worker": "DEBUG"}',
        "COMPONENT_LOG_LEVELS",
        {"worker": "DEBUG"},
    ),
    ("OMNIQ_TASK_QUEUE_TYPE", "redis", "TASK_QUEUE_TYPE", "redis"),
    (
        "OMNIQ_TASK_QUEUE_URL",
        "redis://localhost:6379/0",
        "TASK_QUEUE_URL",
        "redis://localhost:6379/0",
    ),
    ("OMNIQ_RESULT_STORAGE_TYPE", "sqlite", "RESULT_STORAGE_TYPE", "sqlite"),
    ("OMNIQ_RESULT_STORAGE_URL", "sqlite:///r.db", "RESULT_STORAGE_URL", "sqlite:///r.db"),
    ("OMNIQ_EVENT_STORAGE_TYPE", "postgres", "EVENT_STORAGE_TYPE", "postgres"),
    ("OMNIQ_EVENT_STORAGE_URL", "postgresql://h/db", "EVENT_STORAGE_URL", "postgresql://h/db"),
    ("OMNIQ_FSSPEC_URI", "memory://", "FSSPEC_URI", "memory://"),
    ("OMNIQ_OBSTORE_URI", "s3://bucket", "OBSTORE_URI", "s3://bucket"),
    ("OMNIQ_DEFAULT_WORKER", "thread", "DEFAULT_WORKER", "thread"),
    ("OMNIQ_MAX_WORKERS", "20", "MAX_WORKERS", 20),
    ("OMNIQ_THREAD_WORKERS", "8", "THREAD_WORKERS", 8),
    ("OMNIQ_PROCESS_WORKERS", "4", "PROCESS_WORKERS", 4),
    ("OMNIQ_GEVENT_WORKERS", "500", "GEVENT_WORKERS", 500),
    ("OMNIQ_TASK_TIMEOUT", "2.5", "TASK_TIMEOUT", 2.5),
    ("OMNIQ_TASK_TTL", "3600", "TASK_TTL", 3600.0),
    ("OMNIQ_RETRY_ATTEMPTS", "5", "RETRY_ATTEMPTS", 5),
    ("OMNIQ_RETRY_DELAY", "0.5", "RETRY_DELAY", 0.5),
    ("OMNIQ_RESULT_TTL", "60", "RESULT_TTL", 60.0),
    ("OMNIQ_LEASE_TIMEOUT", "90", "LEASE_TIMEOUT", 90.0),
    ("OMNIQ_SECRET_KEY", "k3y", "SECRET_KEY", "k3y"),
    ("OMNIQ_ALLOW_DILL", "false", "ALLOW_DILL", False),
    ("OMNIQ_TASK_MODULES", "app.tasks, app.jobs", "TASK_MODULES", "app.tasks, app.jobs"),
    ("OMNIQ_ALLOW_ANY_FUNCTION", "true", "ALLOW_ANY_FUNCTION", True),
    ("OMNIQ_BREAKER_THRESHOLD", "3", "BREAKER_THRESHOLD", 3),
    ("OMNIQ_BREAKER_COOLDOWN", "0.5", "BREAKER_COOLDOWN", 0.5),
    ("OMNIQ_RESULT_BUFFER", "500", "RESULT_BUFFER", 500),
    ("OMNIQ_DASHBOARD_PORT", "9000", "DASHBOARD_PORT", 9000),
    ("OMNIQ_DASHBOARD_ENABLED", "yes", "DASHBOARD_ENABLED", True),
    ("OMNIQ_TASK_STORAGE_TYPE", "pg", "TASK_QUEUE_TYPE", "postgres"),
    ("OMNIQ_TASK_STORAGE_URL", "nats://localhost:4222", "TASK_QUEUE_URL", "nats://localhost:4222"),
]


def test_override_table_covers_every_setting() -> None:
    assert {setting for _, _, setting, _ in OVERRIDES} == set(Settings.__struct_fields__)


@pytest.mark.parametrize(
    ("var", "raw", "setting", "expected"), OVERRIDES, ids=[o[0] for o in OVERRIDES]
)
def test_variable_overrides_its_setting_with_the_setting_type(
    monkeypatch: pytest.MonkeyPatch, var: str, raw: str, setting: str, expected: Any
) -> None:
    monkeypatch.setenv(var, raw)
    value = getattr(reload_settings(), setting)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        ("on", True),
        ("OFF", False),
        (" true ", True),
    ],
)
def test_boolean_variable_accepts_common_spellings(raw: str, expected: bool) -> None:
    assert load_settings({"OMNIQ_DISABLE_LOGGING": raw}).DISABLE_LOGGING is expected


@pytest.mark.parametrize("raw", ["", "none", "NULL", "  "])
def test_empty_or_none_optional_number_means_no_limit(raw: str) -> None:
    assert load_settings({"OMNIQ_RESULT_TTL": raw}).RESULT_TTL is None


def test_zero_result_ttl_is_the_number_zero_not_none() -> None:
    assert load_settings({"OMNIQ_RESULT_TTL": "0"}).RESULT_TTL == 0.0


def test_empty_optional_string_means_unset() -> None:
    assert load_settings({"OMNIQ_TASK_QUEUE_URL": ""}).TASK_QUEUE_URL is None


@pytest.mark.parametrize("raw", ["", "auto", "none"])
def test_allow_dill_auto_or_empty_means_automatic(raw: str) -> None:
    assert load_settings({"OMNIQ_ALLOW_DILL": raw}).ALLOW_DILL is None


def test_secret_key_keeps_its_whitespace() -> None:
    assert load_settings({"OMNIQ_SECRET_KEY": " k "}).SECRET_KEY == " k "


def test_log_level_is_case_insensitive_and_stored_upper_case() -> None:
    assert load_settings({"OMNIQ_LOG_LEVEL": "info"}).LOG_LEVEL == "INFO"


def test_log_level_disabled_is_accepted() -> None:
    assert load_settings({"OMNIQ_LOG_LEVEL": "disabled"}).LOG_LEVEL == "DISABLED"


def test_postgresql_is_an_alias_of_postgres() -> None:
    loaded = load_settings(
        {"OMNIQ_TASK_QUEUE_TYPE": "postgresql", "OMNIQ_EVENT_STORAGE_TYPE": "PostgreSQL"}
    )
    assert (loaded.TASK_QUEUE_TYPE, loaded.EVENT_STORAGE_TYPE) == ("postgres", "postgres")


@pytest.mark.parametrize("worker", sorted(env_module.WORKER_TYPES))
def test_every_worker_type_is_accepted(worker: str) -> None:
    loaded = load_settings({"OMNIQ_DEFAULT_WORKER": worker.upper()})
    assert worker == loaded.DEFAULT_WORKER


def test_component_log_levels_are_normalized() -> None:
    raw = '{"omniq.worker": "debug", "storage.redis": "Info"}'
    loaded = load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": raw})
    assert loaded.COMPONENT_LOG_LEVELS == {"worker": "DEBUG", "storage.redis": "INFO"}


# --- bad values --------------------------------------------------------------------------------
BAD_VALUES: list[tuple[str, str, str]] = [
    # (variable, raw value, words the message must contain)
    ("OMNIQ_DISABLE_LOGGING", "maybe", "is not a boolean"),
    ("OMNIQ_DASHBOARD_ENABLED", "2", "is not a boolean"),
    ("OMNIQ_ALLOW_DILL", "sometimes", "is not a boolean"),
    ("OMNIQ_MAX_WORKERS", "ten", "is not an integer"),
    ("OMNIQ_RETRY_ATTEMPTS", "1.5", "is not an integer"),
    ("OMNIQ_DASHBOARD_PORT", "http", "is not an integer"),
    ("OMNIQ_RETRY_DELAY", "soon", "is not a number"),
    ("OMNIQ_TASK_TIMEOUT", "1m", "is not a number"),
    ("OMNIQ_RESULT_TTL", "nan", "is not a finite number"),
    ("OMNIQ_TASK_TTL", "inf", "is not a finite number"),
    ("OMNIQ_LOG_LEVEL", "LOUD", "is not a log level"),
    ("OMNIQ_MAX_WORKERS", "0", "must be at least 1"),
    ("OMNIQ_THREAD_WORKERS", "0", "must be at least 1"),
    ("OMNIQ_PROCESS_WORKERS", "-2", "must be at least 1"),
    ("OMNIQ_GEVENT_WORKERS", "0", "must be at least 1"),
    ("OMNIQ_RETRY_ATTEMPTS", "-1", "must be at least 0"),
    ("OMNIQ_LEASE_TIMEOUT", "0", "must be greater than 0"),
    ("OMNIQ_TASK_TIMEOUT", "0", "must be greater than 0"),
    ("OMNIQ_TASK_TTL", "-5", "must be greater than 0"),
    ("OMNIQ_RETRY_DELAY", "-1", "must be 0 seconds or more"),
    ("OMNIQ_RESULT_TTL", "-1", "must be 0 seconds or more"),
    ("OMNIQ_DASHBOARD_PORT", "70000", "is not a TCP port"),
    ("OMNIQ_TASK_QUEUE_TYPE", "mongo", "is not a backend type"),
    ("OMNIQ_TASK_STORAGE_TYPE", "mongo", "is not a backend type"),
    ("OMNIQ_RESULT_STORAGE_TYPE", "s3", "is not a backend type"),
    ("OMNIQ_EVENT_STORAGE_TYPE", "kafka", "is not a backend type"),
    ("OMNIQ_DEFAULT_WORKER", "fiber", "is not a worker type"),
    ("OMNIQ_COMPONENT_LOG_LEVELS", "{worker: DEBUG}", "is not valid JSON"),
    ("OMNIQ_COMPONENT_LOG_LEVELS", '["DEBUG"]', "is not a JSON object"),
    ("OMNIQ_COMPONENT_LOG_LEVELS", '{"worker": "LOUD"}', "bad level for 'worker'"),
    ("OMNIQ_COMPONENT_LOG_LEVELS", '{"worker": 10}', "bad level for 'worker'"),
    ("OMNIQ_COMPONENT_LOG_LEVELS", '{"a..b": "DEBUG"}', "bad component name"),
    ("OMNIQ_PROJECT_NAME", "", "must not be empty"),
    ("OMNIQ_TASK_QUEUE_TYPE", " ", "must not be empty"),
]


@pytest.mark.parametrize(
    ("var", "raw", "words"), BAD_VALUES, ids=[f"{v}={r}" for v, r, _ in BAD_VALUES]
)
def test_bad_value_raises_config_error_naming_variable_and_value(
    var: str, raw: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({var: raw})
    message = str(caught.value)
    assert message.startswith(f"{var}={raw!r} ")
    assert words in message


def test_non_integer_message_reads_as_a_sentence() -> None:
    with pytest.raises(ConfigError, match=r"^OMNIQ_MAX_WORKERS='ten' is not an integer$"):
        load_settings({"OMNIQ_MAX_WORKERS": "ten"})


def test_bad_variable_fails_get_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_LEASE_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="OMNIQ_LEASE_TIMEOUT"):
        get_settings()


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="OMNIQ_MAX_WORKERS"):
        load_settings({"OMNIQ_MAX_WORKERS": "ten"})


def test_bad_url_value_in_error_is_redacted() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"OMNIQ_TASK_STORAGE_TYPE": "redis://u:hunter2@h"})
    assert "hunter2" not in str(caught.value)


# --- aliases and precedence --------------------------------------------------------------------
def test_task_storage_type_stands_for_task_queue_type() -> None:
    assert load_settings({"OMNIQ_TASK_STORAGE_TYPE": "sqlite"}).TASK_QUEUE_TYPE == "sqlite"


def test_task_storage_url_stands_for_task_queue_url() -> None:
    assert load_settings({"OMNIQ_TASK_STORAGE_URL": "redis://h"}).TASK_QUEUE_URL == "redis://h"


def test_task_queue_names_win_over_task_storage_aliases() -> None:
    loaded = load_settings(
        {
            "OMNIQ_TASK_QUEUE_TYPE": "redis",
            "OMNIQ_TASK_STORAGE_TYPE": "nats",
            "OMNIQ_TASK_QUEUE_URL": "redis://a",
            "OMNIQ_TASK_STORAGE_URL": "nats://b",
        }
    )
    assert (loaded.TASK_QUEUE_TYPE, loaded.TASK_QUEUE_URL) == ("redis", "redis://a")


def test_bad_alias_is_ignored_when_the_main_name_wins() -> None:
    loaded = load_settings({"OMNIQ_TASK_QUEUE_TYPE": "redis", "OMNIQ_TASK_STORAGE_TYPE": "mongo"})
    assert loaded.TASK_QUEUE_TYPE == "redis"


def test_fsspec_uri_alone_fills_obstore_uri() -> None:
    loaded = load_settings({"OMNIQ_FSSPEC_URI": "s3://bucket/prefix"})
    assert (loaded.FSSPEC_URI, loaded.OBSTORE_URI) == ("s3://bucket/prefix", "s3://bucket/prefix")


def test_obstore_uri_alone_fills_fsspec_uri() -> None:
    loaded = load_settings({"OMNIQ_OBSTORE_URI": "memory://"})
    assert (loaded.FSSPEC_URI, loaded.OBSTORE_URI) == ("memory://", "memory://")


def test_fsspec_and_obstore_uris_each_keep_their_own_value() -> None:
    loaded = load_settings({"OMNIQ_FSSPEC_URI": "file:///a", "OMNIQ_OBSTORE_URI": "file:///b"})
    assert (loaded.FSSPEC_URI, loaded.OBSTORE_URI) == ("file:///a", "file:///b")


def test_environment_wins_over_settings_module_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "MAX_WORKERS", 3)
    assert load_settings({"OMNIQ_MAX_WORKERS": "7"}).MAX_WORKERS == 7


def test_settings_module_constant_changed_at_runtime_is_seen_on_reload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings_module, "TASK_QUEUE_TYPE", "redis")
    assert reload_settings().TASK_QUEUE_TYPE == "redis"


def test_bad_settings_module_constant_names_the_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "MAX_WORKERS", 0)
    with pytest.raises(
        ConfigError, match=r"omniq\.config\.settings\.MAX_WORKERS=0 must be at least 1"
    ):
        load_settings({})


def test_misspelt_variable_warns_with_a_suggestion() -> None:
    with pytest.warns(UserWarning, match="did you mean OMNIQ_MAX_WORKERS"):
        load_settings({"OMNIQ_MAX_WORKER": "5"})


def test_unrelated_omniq_variable_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings({"OMNIQ_DASHBOARD_THEME": "dark"})


# --- the Settings object -----------------------------------------------------------------------
def test_get_settings_is_cached_until_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("OMNIQ_MAX_WORKERS", "42")
    assert get_settings() is first
    assert reload_settings().MAX_WORKERS == 42
    assert get_settings().MAX_WORKERS == 42


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().MAX_WORKERS = 3  # type: ignore[misc]


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"Settings\.MAX_WORKERS=0 must be at least 1"):
        Settings(MAX_WORKERS=0)


def test_direct_construction_normalizes_values() -> None:
    built = Settings(LOG_LEVEL="debug", LEASE_TIMEOUT=5, TASK_QUEUE_TYPE="PostgreSQL")
    assert (built.LOG_LEVEL, built.LEASE_TIMEOUT, built.TASK_QUEUE_TYPE) == (
        "DEBUG",
        5.0,
        "postgres",
    )
    assert isinstance(built.LEASE_TIMEOUT, float)


def test_direct_construction_rejects_wrong_types() -> None:
    with pytest.raises(ConfigError, match="is not an integer"):
        Settings(MAX_WORKERS="5")  # type: ignore[arg-type]


def test_replace_keeps_validation() -> None:
    with pytest.raises(ConfigError, match="RETRY_DELAY"):
        msgspec.structs.replace(Settings(), RETRY_DELAY=-1.0)


def test_repr_hides_the_secret_key() -> None:
    loaded = load_settings({"OMNIQ_SECRET_KEY": "topsecretvalue"})
    assert "topsecretvalue" not in repr(loaded)
    assert "SECRET_KEY='***'" in repr(loaded)


def test_repr_hides_passwords_inside_url_settings() -> None:
    loaded = load_settings(
        {
            "OMNIQ_TASK_QUEUE_URL": "redis://user:hunter2@cache:6379/0",
            "OMNIQ_RESULT_STORAGE_URL": "postgresql://app:pgpass@db/omniq",
            "OMNIQ_EVENT_STORAGE_URL": "nats://n:natspass@bus:4222",
            "OMNIQ_OBSTORE_URI": "s3://key:s3pass@bucket",
        }
    )
    text = repr(loaded)
    for secret in ("hunter2", "pgpass", "natspass", "s3pass"):
        assert secret not in text
    assert "redis://user:***@cache:6379/0" in text


def test_str_hides_secrets_too() -> None:
    loaded = load_settings({"OMNIQ_SECRET_KEY": "topsecretvalue"})
    assert "topsecretvalue" not in str(loaded)
    assert "topsecretvalue" not in f"{loaded}"


def test_as_dict_gives_the_real_values() -> None:
    loaded = load_settings({"OMNIQ_SECRET_KEY": "k", "OMNIQ_TASK_QUEUE_URL": "redis://u:pw@h"})
    as_dict = loaded.as_dict()
    assert as_dict["SECRET_KEY"] == "k"
    assert as_dict["TASK_QUEUE_URL"] == "redis://u:pw@h"
    assert set(as_dict) == set(Settings.__struct_fields__)


def test_as_dict_is_a_copy() -> None:
    loaded = load_settings({"OMNIQ_COMPONENT_LOG_LEVELS": '{"worker": "DEBUG"}'})
    loaded.as_dict()["COMPONENT_LOG_LEVELS"]["worker"] = "ERROR"
    assert loaded.COMPONENT_LOG_LEVELS == {"worker": "DEBUG"}


def test_as_dict_redact_masks_secrets() -> None:
    loaded = load_settings({"OMNIQ_SECRET_KEY": "k", "OMNIQ_TASK_QUEUE_URL": "redis://u:pw@h"})
    masked = loaded.as_dict(redact=True)
    assert (masked["SECRET_KEY"], masked["TASK_QUEUE_URL"]) == ("***", "redis://u:***@h")


def test_env_var_names_lists_every_setting_and_alias() -> None:
    names = env_module.env_var_names()
    assert "OMNIQ_RESULT_TTL" in names
    assert "OMNIQ_TASK_STORAGE_URL" in names
    assert len(names) == len(Settings.__struct_fields__) + 2


# --- YAML files --------------------------------------------------------------------------------
def _write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_yaml_reads_the_seed_003_example(tmp_path: Path) -> None:
    data = load_yaml(_write(tmp_path, SEED_003_YAML))
    assert data["project_name"] == "my_project"
    assert data["task_queue"] == {
        "type": "file",
        "config": {"base_dir": "some/path", "queues": ["high", "medium", "low"]},
    }
    assert data["event_store"]["config"]["port"] == 5432
    assert data["worker"] == {"type": "thread_pool", "config": {"max_workers": 10}}


def test_load_yaml_accepts_a_string_path(tmp_path: Path) -> None:
    assert load_yaml(str(_write(tmp_path, "a: 1\n"))) == {"a": 1}


def test_empty_yaml_file_is_an_empty_mapping(tmp_path: Path) -> None:
    assert load_yaml(_write(tmp_path, "")) == {}


def test_missing_yaml_file_error_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_yaml(missing)
    assert str(missing) in str(caught.value)


def test_invalid_yaml_error_names_the_path_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "task_queue:\n  type: [redis\n")
    with pytest.raises(ConfigError, match="is not valid YAML at line") as caught:
        load_yaml(path)
    assert str(path) in str(caught.value)


def test_yaml_with_a_list_at_the_top_error_names_the_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "- a\n- b\n")
    with pytest.raises(
        ConfigError, match="must hold a mapping at the top level, not a list"
    ) as caught:
        load_yaml(path)
    assert str(path) in str(caught.value)


def test_directory_instead_of_file_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as caught:
        load_yaml(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_yaml_never_builds_python_objects(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml(path)


def test_env_reference_in_yaml_is_substituted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PASSWORD", "from-env")
    text = "event_store:\n  config:\n    password: ${PG_PASSWORD}\n    dsn: x-${PG_PASSWORD}-y\n"
    path = _write(tmp_path, text)
    assert load_yaml(path)["event_store"]["config"] == {
        "password": "from-env",
        "dsn": "x-from-env-y",
    }


def test_env_reference_default_is_used_when_unset(tmp_path: Path) -> None:
    path = _write(
        tmp_path, 'a: ${OMNIQ_TEST_UNSET_VAR:-fallback}\nb: ["${OMNIQ_TEST_UNSET_VAR:-}"]\n'
    )
    assert load_yaml(path, environ={}) == {"a": "fallback", "b": [""]}


def test_environ_argument_replaces_the_process_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "a: ${ONLY_HERE}\n")
    assert load_yaml(path, environ={"ONLY_HERE": "v"}) == {"a": "v"}


def test_unset_env_reference_error_names_variable_key_and_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "task_queue:\n  url: ${OMNIQ_TEST_UNSET_VAR}\n")
    with pytest.raises(
        ConfigError, match=r"task_queue\.url refers to \$\{OMNIQ_TEST_UNSET_VAR\}"
    ) as caught:
        load_yaml(path, environ={})
    assert str(path) in str(caught.value)


def test_escaped_reference_stays_literal(tmp_path: Path) -> None:
    assert load_yaml(_write(tmp_path, "a: $${HOME}\n"), environ={}) == {"a": "${HOME}"}


def test_interpolation_can_be_turned_off(tmp_path: Path) -> None:
    assert load_yaml(_write(tmp_path, "a: ${X}\n"), environ={}, interpolate=False) == {"a": "${X}"}


def test_substituted_values_stay_strings(tmp_path: Path) -> None:
    path = _write(tmp_path, "password: ${PW}\n")
    assert load_yaml(path, environ={"PW": "12345"}) == {"password": "12345"}


# --- load_config -------------------------------------------------------------------------------
def test_load_config_builds_the_seed_003_example(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SEED_003_YAML))
    assert config.project_name == "my_project"
    assert config.task_queue == ComponentSpec(
        type="file", config={"base_dir": "some/path", "queues": ["high", "medium", "low"]}
    )
    assert config.result_store == ComponentSpec(type="sqlite", config={"base_dir": "some/path"})
    assert config.event_store is not None
    assert config.event_store.type == "postgres"
    assert config.event_store.config["password"] == "secret"
    assert config.worker == WorkerSpec(type="thread_pool", config={"max_workers": 10})


def test_load_config_accepts_a_string_path(tmp_path: Path) -> None:
    assert load_config(str(_write(tmp_path, SEED_003_ON_SQLITE))).project_name == "my_project"


def test_load_config_accepts_a_dict() -> None:
    config = load_config({"project_name": "p", "task_queue": {"type": "redis", "url": "redis://h"}})
    assert config.task_queue == ComponentSpec(type="redis", url="redis://h")


def test_load_config_returns_an_omniq_config_unchanged() -> None:
    config = OmniQConfig(project_name="p")
    assert load_config(config) is config


def test_component_url_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "result_store:\n  url: sqlite:///results.db\n")
    assert load_config(path).result_store == ComponentSpec(url="sqlite:///results.db")


def test_component_given_as_a_url_string() -> None:
    config = load_config({"task_queue": "redis://localhost:6379/0"})
    assert config.task_queue == ComponentSpec(url="redis://localhost:6379/0")


def test_worker_given_as_a_type_string() -> None:
    assert load_config({"worker": "Gevent_Pool"}).worker == WorkerSpec(type="gevent_pool")


def test_postgresql_component_type_becomes_postgres() -> None:
    config = load_config({"event_store": {"type": "postgresql"}})
    assert config.event_store is not None
    assert config.event_store.type == "postgres"


def test_empty_component_config_means_no_options(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "task_queue:\n  type: memory\n  config:\n"))
    assert config.task_queue == ComponentSpec(type="memory")


def test_empty_config_gives_defaults() -> None:
    assert load_config({}) == OmniQConfig()


def test_wrong_type_error_names_the_field_path() -> None:
    with pytest.raises(
        ConfigError, match=r"^config: task_queue\.type: Expected `str \| null`, got `int`$"
    ):
        load_config({"task_queue": {"type": 5}})


def test_wrong_type_in_yaml_error_names_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "worker:\n  type: thread\n  config: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"worker\.config: Expected `object`") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="unknown key 'task_queu'; did you mean 'task_queue'"):
        load_config({"task_queu": {"type": "redis"}})


def test_unknown_component_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="task_queue: unknown key 'base_dir'"):
        load_config({"task_queue": {"type": "file", "base_dir": "x"}})


def test_unknown_backend_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"task_queue\.type='mongo' is not a backend type"):
        load_config({"task_queue": {"type": "mongo"}})


def test_unknown_worker_type_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"worker\.type='fiber' is not a worker type"):
        load_config({"worker": {"type": "fiber"}})


def test_load_config_rejects_other_source_types() -> None:
    with pytest.raises(TypeError, match="not int"):
        load_config(5)  # type: ignore[arg-type]


def test_config_repr_hides_passwords_from_yaml(tmp_path: Path) -> None:
    yaml_text = (
        SEED_003_ON_SQLITE.replace("password: secret", "password: pgpw-42") + "secret_key: sk-99\n"
    )
    text = repr(load_config(_write(tmp_path, yaml_text)))
    assert "pgpw-42" not in text
    assert "sk-99" not in text


# --- package surface ---------------------------------------------------------------------------
def test_package_exports_the_public_api() -> None:
    for name in (
        "Settings",
        "get_settings",
        "load_settings",
        "reload_settings",
        "load_yaml",
        "load_config",
        "configure_logging",
        "get_logger",
    ):
        assert name in omniq.config.__all__
        assert callable(getattr(omniq.config, name))

"""Library logging (omniq.config.logging): names, levels, DISABLED, handlers and credential masking."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator

import pytest

from omniq.config import configure_logging, get_logger, reset_logging
from omniq.config import env as env_module
from omniq.config.logging import OFF, RedactingFilter
from omniq.exceptions import ConfigError


@pytest.fixture(autouse=True)
def clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from an untouched ``omniq`` logger tree and environment, and leaves one."""
    for name in list(os.environ):
        if name.startswith("OMNIQ_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(env_module, "_cached", None)
    reset_logging()
    yield
    reset_logging()


def _capture(
    fmt: str = "%(name)s %(levelname)s %(message)s",
) -> tuple[logging.Handler, io.StringIO]:
    """An application-side handler on the root logger, as ``logging.basicConfig`` would add."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    return handler, stream


@pytest.fixture
def app_output() -> Iterator[io.StringIO]:
    handler, stream = _capture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _owned_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger("omniq").handlers if getattr(h, "_omniq_owned", False)]


# --- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("component", "name"),
    [
        ("worker", "omniq.worker"),
        ("queue", "omniq.queue"),
        ("events", "omniq.events"),
        ("storage.redis", "omniq.storage.redis"),
        ("omniq.storage.redis", "omniq.storage.redis"),
        ("", "omniq"),
        ("omniq", "omniq"),
    ],
)
def test_get_logger_names_component_loggers_under_omniq(component: str, name: str) -> None:
    assert get_logger(component).name == name


@pytest.mark.parametrize("component", ["storage..redis", "worker.", ".", "omniq."])
def test_get_logger_rejects_malformed_component_names(component: str) -> None:
    with pytest.raises(ConfigError):
        get_logger(component)


# --- handlers ------------------------------------------------------------------------------------
def test_library_adds_a_null_handler_and_no_output_handler() -> None:
    get_logger("worker")
    handlers = logging.getLogger("omniq").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert not any(isinstance(h, logging.StreamHandler) for h in handlers)


def test_configure_logging_adds_no_output_handler_unless_asked() -> None:
    configure_logging("DEBUG")
    assert _owned_handlers() == []


def test_handler_true_adds_one_stderr_handler() -> None:
    configure_logging("INFO", handler=True)
    (handler,) = _owned_handlers()
    assert isinstance(handler, logging.StreamHandler)


def test_configuring_twice_does_not_duplicate_handlers() -> None:
    configure_logging("INFO", handler=True)
    configure_logging("DEBUG", handler=True)
    configure_logging("DEBUG")
    for _ in range(3):
        get_logger("worker")
    root = logging.getLogger("omniq")
    assert len(_owned_handlers()) == 1
    assert sum(isinstance(h, logging.NullHandler) for h in root.handlers) == 1


def test_handler_false_removes_the_added_handler() -> None:
    configure_logging("INFO", handler=True)
    configure_logging("INFO", handler=False)
    assert _owned_handlers() == []


def test_given_handler_receives_records_with_the_given_format() -> None:
    stream = io.StringIO()
    configure_logging("INFO", handler=logging.StreamHandler(stream), fmt="<%(message)s>")
    get_logger("worker").info("hello")
    assert stream.getvalue() == "<hello>\n"


def test_handler_true_uses_the_given_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", handler=True, fmt="[%(name)s] %(message)s")
    get_logger("queue").info("ready")
    assert "[omniq.queue] ready" in capsys.readouterr().err


def test_redacting_filter_is_installed_once() -> None:
    for _ in range(3):
        get_logger("worker")
        configure_logging("INFO")
    for name in ("omniq", "omniq.worker"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RedactingFilter) for f in filters) == 1


# --- levels ----------------------------------------------------------------------------------------
def test_configure_logging_sets_the_omniq_level() -> None:
    configure_logging("DEBUG")
    assert logging.getLogger("omniq").level == logging.DEBUG
    assert get_logger("worker").isEnabledFor(logging.DEBUG)


def test_level_names_are_case_insensitive() -> None:
    configure_logging("error")
    assert logging.getLogger("omniq").level == logging.ERROR


def test_numeric_level_is_accepted() -> None:
    configure_logging(logging.INFO)
    assert logging.getLogger("omniq").level == logging.INFO


def test_configure_logging_reads_the_level_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_LOG_LEVEL", "info")
    configure_logging()
    assert logging.getLogger("omniq").level == logging.INFO


def test_unknown_level_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="'LOUD' is not a log level"):
        configure_logging("LOUD")


def test_records_reach_the_application_handlers(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("worker").info("started %d threads", 4)
    get_logger("worker").debug("too verbose")
    assert app_output.getvalue() == "omniq.worker INFO started 4 threads\n"


def test_disabled_level_silences_every_omniq_logger(app_output: io.StringIO) -> None:
    logging.getLogger("omniq.custom").setLevel(logging.DEBUG)  # even one with its own level
    configure_logging("DISABLED")
    get_logger("worker").critical("nope")
    logging.getLogger("omniq.custom").critical("nope")
    logging.getLogger("omniq").error("nope")
    assert app_output.getvalue() == ""


def test_disable_logging_setting_silences_everything(
    monkeypatch: pytest.MonkeyPatch, app_output: io.StringIO
) -> None:
    monkeypatch.setenv("OMNIQ_DISABLE_LOGGING", "true")
    monkeypatch.setenv("OMNIQ_LOG_LEVEL", "DEBUG")
    configure_logging()
    get_logger("worker").critical("nope")
    assert app_output.getvalue() == ""


def test_disabled_wins_over_component_levels() -> None:
    configure_logging("INFO", {"worker": "DEBUG"}, disabled=True)
    assert not get_logger("worker").isEnabledFor(logging.CRITICAL)


def test_disabled_is_undone_by_the_next_configuration() -> None:
    logging.getLogger("omniq.custom").setLevel(logging.DEBUG)
    configure_logging("DISABLED")
    configure_logging("INFO")
    assert logging.getLogger("omniq.custom").isEnabledFor(logging.INFO)
    assert logging.getLogger("omniq").level == logging.INFO


def test_component_level_applies_to_its_component_only() -> None:
    configure_logging("WARNING", {"worker": "DEBUG"})
    assert get_logger("worker").isEnabledFor(logging.DEBUG)
    assert not get_logger("queue").isEnabledFor(logging.INFO)


def test_component_level_covers_its_sub_components() -> None:
    configure_logging("WARNING", {"storage": "INFO"})
    assert get_logger("storage.redis").isEnabledFor(logging.INFO)


def test_component_level_may_be_quieter_than_the_global_level() -> None:
    configure_logging("DEBUG", {"events": "ERROR"})
    assert not get_logger("events").isEnabledFor(logging.WARNING)
    assert get_logger("worker").isEnabledFor(logging.DEBUG)


def test_component_disabled_level_silences_that_component() -> None:
    configure_logging("DEBUG", {"events": "DISABLED"})
    assert get_logger("events").level == OFF
    assert get_logger("worker").isEnabledFor(logging.DEBUG)


def test_component_levels_accept_omniq_prefixed_names() -> None:
    configure_logging("WARNING", {"omniq.storage.redis": "debug"})
    assert logging.getLogger("omniq.storage.redis").level == logging.DEBUG


def test_component_levels_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_COMPONENT_LOG_LEVELS", '{"worker": "DEBUG", "queue": "ERROR"}')
    configure_logging()
    assert logging.getLogger("omniq.worker").level == logging.DEBUG
    assert logging.getLogger("omniq.queue").level == logging.ERROR


def test_reconfiguring_resets_earlier_component_levels() -> None:
    configure_logging("WARNING", {"worker": "DEBUG"})
    configure_logging("WARNING", {"queue": "DEBUG"})
    assert logging.getLogger("omniq.worker").level == logging.NOTSET


def test_bad_component_level_raises_and_changes_nothing() -> None:
    configure_logging("ERROR")
    with pytest.raises(ConfigError, match="component_levels"):
        configure_logging("DEBUG", {"worker": "LOUD"})
    assert logging.getLogger("omniq").level == logging.ERROR


def test_bad_component_name_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        configure_logging("INFO", {"a..b": "DEBUG"})


# --- automatic setup from the environment ---------------------------------------------------------
def test_first_get_logger_applies_the_level_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIQ_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("OMNIQ_COMPONENT_LOG_LEVELS", '{"events": "ERROR"}')
    get_logger("worker")
    assert logging.getLogger("omniq").level == logging.DEBUG
    assert logging.getLogger("omniq.events").level == logging.ERROR


def test_first_get_logger_keeps_a_level_the_application_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIQ_LOG_LEVEL", "ERROR")
    logging.getLogger("omniq").setLevel(logging.DEBUG)
    get_logger("worker")
    assert logging.getLogger("omniq").level == logging.DEBUG


def test_get_logger_survives_a_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIQ_MAX_WORKERS", "ten")
    assert get_logger("worker").name == "omniq.worker"


def test_explicit_configuration_is_not_overridden_by_get_logger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMNIQ_LOG_LEVEL", "ERROR")
    configure_logging("DEBUG")
    get_logger("worker")
    assert logging.getLogger("omniq").level == logging.DEBUG


# --- masking credentials -----------------------------------------------------------------------------
def test_password_in_url_is_masked_once_formatted(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("storage.redis").info("connecting to redis://user:pw@host:6379/0")
    assert "pw" not in app_output.getvalue()
    assert "redis://user:***@host:6379/0" in app_output.getvalue()


def test_password_in_argument_is_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("worker").info("connecting to %s", "postgresql://app:hunter2@db/omniq")
    assert "hunter2" not in app_output.getvalue()
    assert "postgresql://app:***@db/omniq" in app_output.getvalue()


def test_password_in_mapping_argument_is_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("worker").info("url=%(url)s", {"url": "nats://n:hunter2@bus"})
    assert "hunter2" not in app_output.getvalue()


def test_password_in_object_argument_is_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("worker").info("failed: %s", ConnectionError("cannot reach redis://u:hunter2@h"))
    assert "hunter2" not in app_output.getvalue()
    assert "cannot reach redis://u:***@h" in app_output.getvalue()


def test_url_split_between_template_and_arguments_is_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    get_logger("worker").info("redis://%s:%s@%s", "user", "hunter2", "host")
    assert app_output.getvalue() == "omniq.worker INFO redis://user:***@host\n"


def test_password_in_traceback_is_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    try:
        raise ConnectionError("cannot reach redis://u:hunter2@h")
    except ConnectionError:
        get_logger("worker").exception("connection lost")
    assert "hunter2" not in app_output.getvalue()
    assert "ConnectionError: cannot reach redis://u:***@h" in app_output.getvalue()


def test_records_of_plain_getlogger_children_are_masked(app_output: io.StringIO) -> None:
    # omniq.storage.nats was never returned by get_logger: the library's handler still masks it.
    configure_logging("INFO")
    logging.getLogger("omniq.storage.nats").warning("using nats://a:hunter2@bus")
    assert "hunter2" not in app_output.getvalue()


def test_records_to_the_omniq_logger_itself_are_masked(app_output: io.StringIO) -> None:
    configure_logging("INFO")
    logging.getLogger("omniq").warning("using nats://a:hunter2@bus")
    assert "hunter2" not in app_output.getvalue()


def test_added_handler_output_is_masked() -> None:
    stream = io.StringIO()
    configure_logging("INFO", handler=logging.StreamHandler(stream))
    get_logger("worker").info("to %s", "redis://u:hunter2@h")
    assert stream.getvalue() == "to redis://u:***@h\n"


def test_message_without_secret_keeps_its_template_and_arguments() -> None:
    record = logging.LogRecord(
        "omniq.worker", logging.INFO, __file__, 1, "took %.1f s", (2.0,), None
    )
    RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("took %.1f s", (2.0,))


def test_redacting_filter_never_drops_a_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "redis://u:p@h", None, None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "redis://u:***@h"


def test_redaction_does_not_break_a_password_placeholder() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "redis://%s:%s@h", ("u", "secretpw"), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "redis://u:***@h"

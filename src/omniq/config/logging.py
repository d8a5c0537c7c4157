"""Library logging: the ``omniq`` logger tree, its levels, and masking of credentials.

OmniQ behaves like a well-mannered library: it logs under ``omniq`` and ``omniq.<component>``
(``omniq.worker``, ``omniq.queue``, ``omniq.events``, ``omniq.storage.redis``, ...), installs only a
do-nothing handler, and prints nothing unless the application asks (``configure_logging(
handler=True)``) or configures logging itself. This is separate from task events, which go to the
event storage.

Levels come from the settings (``OMNIQ_LOG_LEVEL``, ``OMNIQ_COMPONENT_LOG_LEVELS``,
``OMNIQ_DISABLE_LOGGING``): :func:`configure_logging` applies them, and the first
:func:`get_logger` applies them too so that the environment works without any code — without
overriding a level the application already set on an ``omniq`` logger.

Connection URLs carry passwords and end up in log lines (``connecting to redis://u:pw@host``).
:class:`RedactingFilter` masks them in the message, its arguments, the traceback text and the stack
info. It sits on the ``omniq`` logger, on every logger :func:`get_logger` returns, and inside the
library's own handler on ``omniq``, which sees every record propagated from any ``omniq.*`` logger
(even one created with plain ``logging.getLogger``) before the application's handlers on the root
logger format it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any, Final, TextIO

from omniq._redact import redact_text
from omniq.config.env import LOG_LEVELS, normalize_component, normalize_log_level
from omniq.exceptions import ConfigError

ROOT_LOGGER: Final = "omniq"
#: Above CRITICAL: the level that silences a logger entirely ("DISABLED").
OFF: Final = logging.CRITICAL + 10
DEFAULT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: a console that is not a terminal (a pipe, a log collector): one plain line per record
CONSOLE_FORMAT: Final = "[%(asctime)s: %(levelname)s/%(name)s] %(message)s"

_MARK = "_omniq_redacted"
_OWNED = "_omniq_owned"
_exc_formatter = logging.Formatter()
_lock = threading.RLock()
_levelled: set[str] = set()  # loggers whose level configure_logging set, reset on the next call
_settings_applied = False


class RedactingFilter(logging.Filter):
    """Masks passwords of URLs in a record; it never drops a record.

    The record is changed in place, so every handler after this filter sees the masked version.
    A record is processed once even if it meets several of these filters on its way up.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True
        setattr(record, _MARK, True)
        try:
            _redact_record(record)
        except Exception:  # never lose a log line because masking failed
            record.msg = redact_text(str(record.msg))
            record.args = None
        return True


def _may_leak(text: str) -> bool:
    return "://" in text and "@" in text


def _redact_object(value: Any) -> Any:
    """A str argument is masked; any other object only if its text shows a credential, in which
    case the masked text replaces it (%s and %r still work; only %d on such an object would not)."""
    if isinstance(value, str):
        return redact_text(value) if _may_leak(value) else value
    if value is None or isinstance(value, bool | int | float | bytes):
        return value
    try:
        text = str(value)
    except Exception:
        return value
    if _may_leak(text):
        masked = redact_text(text)
        if masked != text:
            return masked
    return value


def _redact_record(record: logging.LogRecord) -> None:
    if not record.args:
        record.msg = _redact_object(record.msg)
    else:
        # The template is left alone: masking "redis://%s:%s@h" would eat a placeholder.
        if isinstance(record.args, Mapping):
            record.args = {k: _redact_object(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_object(a) for a in record.args)
        # A URL in the template, or split between template and arguments, is only visible once
        # formatted; such a record is frozen into its masked text.
        try:
            message = record.getMessage()
        except Exception:  # the handler reports the bad format, printing the template
            record.msg = _redact_object(record.msg)
            message = ""
        if _may_leak(message):
            masked = redact_text(message)
            if masked != message:
                record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        text = _exc_formatter.formatException(record.exc_info)
        if _may_leak(text):
            record.exc_text = redact_text(text)
    elif record.exc_text and _may_leak(record.exc_text):
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info and _may_leak(record.stack_info):
        record.stack_info = redact_text(record.stack_info)


class _RedactingNullHandler(logging.NullHandler):
    """The library's handler on ``omniq``: emits nothing (like NullHandler, so Python's last-resort
    stderr output stays off), but runs its filters, which mask records from every child logger."""

    def handle(self, record: logging.LogRecord) -> bool:
        return bool(self.filter(record))


def _has_redacting_filter(filterer: logging.Filterer) -> bool:
    return any(isinstance(f, RedactingFilter) for f in filterer.filters)


def _install_filter(filterer: logging.Filterer) -> None:
    if not _has_redacting_filter(filterer):
        filterer.addFilter(RedactingFilter())


def _root() -> logging.Logger:
    """The ``omniq`` logger with its null handler and filter (idempotent)."""
    root = logging.getLogger(ROOT_LOGGER)
    with _lock:
        _install_filter(root)
        if not any(isinstance(h, _RedactingNullHandler) for h in root.handlers):
            null = _RedactingNullHandler()
            null.addFilter(RedactingFilter())
            root.addHandler(null)
    return root


def _logger_name(component: str) -> str:
    try:
        normalized = normalize_component(component)
    except ValueError as exc:
        raise ConfigError(f"{component!r} {exc}") from None
    return f"{ROOT_LOGGER}.{normalized}" if normalized else ROOT_LOGGER


def get_logger(component: str = "") -> logging.Logger:
    """The logger of a component: ``get_logger("worker")`` is ``omniq.worker``; ``""`` is ``omniq``.

    The first call applies the logging settings (see the module docstring); a settings error is
    left for the code that reads the settings to raise, so that merely creating a logger at import
    time never breaks ``import omniq``.
    """
    root = _root()
    _apply_settings_once()
    name = _logger_name(component) if component else ROOT_LOGGER
    if name == ROOT_LOGGER:
        return root
    logger = logging.getLogger(name)
    with _lock:
        _install_filter(logger)
    return logger


def console_handler(stream: TextIO | None = None) -> logging.Handler:
    """The handler of a program's console (``omniq worker``): on a terminal, rich's (levels in
    colour, aligned columns, wrapped to the window); anywhere else plain lines in Celery's layout
    (:data:`CONSOLE_FORMAT`), which log collectors and ``grep`` take as they are."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=Console(file=stream),
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            log_time_format="[%X]",
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    return handler


def _level_number(value: str | int, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what}={value!r} is not a log level")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{what}={value!r} is not a log level")
        return value
    try:
        name = normalize_log_level(value)
    except ValueError as exc:
        raise ConfigError(f"{what}={value!r} {exc}") from None
    return OFF if name == "DISABLED" else logging.getLevelNamesMapping()[name]


def _omniq_loggers() -> list[logging.Logger]:
    prefix = ROOT_LOGGER + "."
    return [
        logger
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith(prefix) and isinstance(logger, logging.Logger)
    ]


def _apply_levels(
    level: int,
    component_levels: Mapping[str, int],
    *,
    respect_existing: bool,
) -> None:
    """Sets the levels; with ``respect_existing``, levels an application already set are kept."""
    root = logging.getLogger(ROOT_LOGGER)
    if not (respect_existing and root.level != logging.NOTSET):
        root.setLevel(level)
    if level >= OFF:
        # Disabled: a child with a level of its own would still emit, so silence those too.
        for logger in _omniq_loggers():
            if logger.level != logging.NOTSET:
                logger.setLevel(OFF)
                _levelled.add(logger.name)
        return
    for component, number in component_levels.items():
        logger = logging.getLogger(_logger_name(component))
        if respect_existing and logger.level != logging.NOTSET:
            continue
        logger.setLevel(number)
        _levelled.add(logger.name)


def _apply_settings_once() -> None:
    global _settings_applied
    if _settings_applied:
        return
    from omniq.config.env import get_settings

    with _lock:
        if _settings_applied:
            return
        try:
            settings = get_settings()
        except ConfigError:
            return  # retried on the next get_logger; the component reading settings will raise
        _settings_applied = True
        disabled = settings.DISABLE_LOGGING or settings.LOG_LEVEL == "DISABLED"
        level = OFF if disabled else _level_number(settings.LOG_LEVEL, "LOG_LEVEL")
        components = {
            k: _level_number(v, f"COMPONENT_LOG_LEVELS[{k!r}]")
            for k, v in settings.COMPONENT_LOG_LEVELS.items()
        }
        _apply_levels(level, components, respect_existing=True)


def configure_logging(
    level: str | int | None = None,
    component_levels: Mapping[str, str | int] | None = None,
    disabled: bool | None = None,
    *,
    handler: bool | logging.Handler | None = None,
    fmt: str | None = None,
) -> logging.Logger:
    """Sets the levels of the ``omniq`` loggers and, if asked, where their records go.

    Arguments left to None come from the settings (LOG_LEVEL, COMPONENT_LOG_LEVELS,
    DISABLE_LOGGING). ``level`` is a name (``"DEBUG"``... or ``"DISABLED"``) or a number.
    ``component_levels`` maps components (``"worker"``, ``"storage.redis"``) to levels; they may be
    more verbose than ``level``. ``disabled=True`` or level ``DISABLED`` silences every ``omniq``
    logger, component levels included.

    ``handler``: None leaves handlers as they are; True adds a stderr handler (``fmt`` or
    DEFAULT_FORMAT); a Handler instance is added as given (``fmt`` only if it has no formatter);
    False removes the handler an earlier call added. Only one such handler exists at a time, so
    calling this repeatedly never duplicates output. Records still propagate to the application's
    own handlers, so an application that configures the root logger needs no handler here.

    Each call starts from scratch: component levels set by an earlier call are reset first.
    Everything is validated before anything changes. Returns the ``omniq`` logger.
    """
    global _settings_applied
    if level is None or component_levels is None or disabled is None:
        from omniq.config.env import get_settings

        settings = get_settings()
        level = settings.LOG_LEVEL if level is None else level
        component_levels = (
            settings.COMPONENT_LOG_LEVELS if component_levels is None else component_levels
        )
        disabled = settings.DISABLE_LOGGING if disabled is None else disabled
    number = _level_number(level, "level")
    if disabled:
        number = OFF
    components = {
        str(k): _level_number(v, f"component_levels[{k!r}]") for k, v in component_levels.items()
    }
    for component in components:
        _logger_name(component)

    new: logging.Handler | None = None
    if isinstance(handler, logging.Handler):
        new = handler
        if fmt is not None and new.formatter is None:
            new.setFormatter(logging.Formatter(fmt))
    elif handler:
        new = logging.StreamHandler(sys.stderr)
        new.setFormatter(logging.Formatter(fmt or DEFAULT_FORMAT))

    root = _root()
    with _lock:
        _settings_applied = True  # explicit configuration replaces the automatic one
        _reset_levels()
        _apply_levels(number, components, respect_existing=False)
        if handler is not None:
            _remove_owned_handlers(root, keep=new)
            if new is not None:
                _install_filter(new)
                setattr(new, _OWNED, True)
                root.addHandler(new)
    return root


def _reset_levels() -> None:
    for name in _levelled:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _levelled.clear()


def _remove_owned_handlers(root: logging.Logger, keep: logging.Handler | None = None) -> None:
    for old in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(old)
        if old is not keep:
            old.close()


def reset_logging() -> None:
    """Undoes :func:`configure_logging` and the automatic setup: the ``omniq`` loggers' levels go
    back to NOTSET and the handler it added is removed; the next :func:`get_logger` applies the
    settings again. For tests, and for applications that reconfigure logging from scratch."""
    global _settings_applied
    root = _root()
    with _lock:
        _reset_levels()
        root.setLevel(logging.NOTSET)
        _remove_owned_handlers(root)
        _settings_applied = False


_root()  # a NullHandler from import time on, as the logging HOWTO asks of libraries

__all__ = [
    "CONSOLE_FORMAT",
    "DEFAULT_FORMAT",
    "LOG_LEVELS",
    "OFF",
    "ROOT_LOGGER",
    "RedactingFilter",
    "configure_logging",
    "console_handler",
    "get_logger",
    "reset_logging",
]

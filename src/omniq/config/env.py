"""``OMNIQ_<NAME>`` environment overrides of :mod:`omniq.config.settings`, typed and validated.

Environment variables are OmniQ's primary configuration in deployments, so a wrong one must fail
at start-up with a message naming the variable and its value (``OMNIQ_MAX_WORKERS='ten' is not an
integer``) instead of surfacing later as an obscure error deep inside a worker.

Parsing follows the type of the setting:

* ``bool``: ``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case).
* ``int`` and ``float``: decimal numbers; floats must be finite.
* Optional settings (``X | None``): an empty value means None (unset). Numeric and boolean optional
  settings also take ``none`` or ``null``, and ALLOW_DILL takes ``auto`` (None is its automatic
  mode). ``0`` is always the number 0, never "no limit": a zero timeout or TTL is rejected so that
  nobody expects it to mean "unlimited".
* ``COMPONENT_LOG_LEVELS``: a JSON object, ``{"worker": "DEBUG"}``.
* Surrounding whitespace is ignored, except in SECRET_KEY, which is used as given.

Names from both seeds are accepted: ``OMNIQ_TASK_STORAGE_TYPE``/``_URL`` (seed 004) stand for
``OMNIQ_TASK_QUEUE_TYPE``/``_URL`` (seed 003, which wins when both are set); ``OMNIQ_FSSPEC_URI``
and ``OMNIQ_OBSTORE_URI`` each fill their own setting, and one set alone fills both.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import threading
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from omniq._redact import redact_value
from omniq.config import settings as _defaults
from omniq.exceptions import ConfigError
from omniq.storage.registry import BACKENDS, backend_names

ENV_PREFIX: Final = "OMNIQ_"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "DISABLED")
# read from the one list of backends (omniq.storage.registry): a type name, or one of its aliases
BACKEND_TYPES: Final = frozenset(backend_names())
BACKEND_ALIASES: Final[Mapping[str, str]] = types.MappingProxyType(
    {alias: entry.name for entry in BACKENDS for alias in entry.aliases}
)
WORKER_TYPES: Final = frozenset(
    {"async", "thread", "thread_pool", "process", "process_pool", "gevent", "gevent_pool"}
)
#: Other spellings of a setting's variable, after ``OMNIQ_<NAME>`` (which wins when both are set).
ENV_ALIASES: Final[Mapping[str, tuple[str, ...]]] = types.MappingProxyType(
    {
        "TASK_QUEUE_TYPE": ("OMNIQ_TASK_STORAGE_TYPE",),
        "TASK_QUEUE_URL": ("OMNIQ_TASK_STORAGE_URL",),
    }
)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE_WORDS = frozenset({"none", "null"})
_URI_PAIR = ("FSSPEC_URI", "OBSTORE_URI")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """The effective settings: the constants of :mod:`omniq.config.settings` and their overrides.

    Frozen so that a component cannot change a value under the feet of the others; build a new one
    with :func:`load_settings` or ``msgspec.structs.replace``. Direct construction is validated too
    (``Settings(MAX_WORKERS=0)`` raises :class:`~omniq.exceptions.ConfigError`), so that tests and
    embedding applications get the same guarantees as the environment. The repr masks SECRET_KEY
    and passwords inside URLs, because settings end up in logs and tracebacks.
    """

    PROJECT_NAME: str = _defaults.PROJECT_NAME
    BASE_DIR: str = _defaults.BASE_DIR
    LOG_LEVEL: str = _defaults.LOG_LEVEL
    DISABLE_LOGGING: bool = _defaults.DISABLE_LOGGING
    COMPONENT_LOG_LEVELS: dict[str, str] = msgspec.field(default_factory=dict)
    TASK_QUEUE_TYPE: str = _defaults.TASK_QUEUE_TYPE
    TASK_QUEUE_URL: str | None = _defaults.TASK_QUEUE_URL
    RESULT_STORAGE_TYPE: str | None = _defaults.RESULT_STORAGE_TYPE
    RESULT_STORAGE_URL: str | None = _defaults.RESULT_STORAGE_URL
    EVENT_STORAGE_TYPE: str | None = _defaults.EVENT_STORAGE_TYPE
    EVENT_STORAGE_URL: str | None = _defaults.EVENT_STORAGE_URL
    FSSPEC_URI: str | None = _defaults.FSSPEC_URI
    OBSTORE_URI: str | None = _defaults.OBSTORE_URI
    DEFAULT_WORKER: str = _defaults.DEFAULT_WORKER
    MAX_WORKERS: int = _defaults.MAX_WORKERS
    THREAD_WORKERS: int = _defaults.THREAD_WORKERS
    PROCESS_WORKERS: int = _defaults.PROCESS_WORKERS
    GEVENT_WORKERS: int = _defaults.GEVENT_WORKERS
    TASK_TIMEOUT: float | None = _defaults.TASK_TIMEOUT
    TASK_TTL: float | None = _defaults.TASK_TTL
    RETRY_ATTEMPTS: int = _defaults.RETRY_ATTEMPTS
    RETRY_DELAY: float = _defaults.RETRY_DELAY
    RESULT_TTL: float | None = _defaults.RESULT_TTL
    LEASE_TIMEOUT: float = _defaults.LEASE_TIMEOUT
    SECRET_KEY: str | None = _defaults.SECRET_KEY
    ALLOW_DILL: bool | None = _defaults.ALLOW_DILL
    TASK_MODULES: str | None = _defaults.TASK_MODULES
    ALLOW_ANY_FUNCTION: bool = _defaults.ALLOW_ANY_FUNCTION
    BREAKER_THRESHOLD: int = _defaults.BREAKER_THRESHOLD
    BREAKER_COOLDOWN: float = _defaults.BREAKER_COOLDOWN
    RESULT_BUFFER: int = _defaults.RESULT_BUFFER
    DASHBOARD_PORT: int = _defaults.DASHBOARD_PORT
    DASHBOARD_ENABLED: bool = _defaults.DASHBOARD_ENABLED

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            checked = _validated(name, value, label=f"Settings.{name}")
            if checked is not value:
                msgspec.structs.force_setattr(self, name, checked)
        first, second = _URI_PAIR
        if getattr(self, first) is None:
            msgspec.structs.force_setattr(self, first, getattr(self, second))
        elif getattr(self, second) is None:
            msgspec.structs.force_setattr(self, second, getattr(self, first))

    def as_dict(self, *, redact: bool = False) -> dict[str, Any]:
        """A plain copy (safe to mutate); ``redact=True`` gives the masked view fit for display."""
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = copy.copy(getattr(self, name))
            out[name] = redact_value(name, value) if redact else value
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.as_dict(redact=True).items())
        return f"Settings({shown})"

    __str__ = __repr__

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # rich and IPython pretty printers bypass __repr__; keep them on the masked view too.
        return list(self.as_dict(redact=True).items())


# --- typing of the fields ----------------------------------------------------------------------
def _field_kind(tp: Any) -> tuple[type, bool]:
    """(base type, nullable) of an annotation such as ``float | None`` or ``dict[str, str]``."""
    nullable = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        nullable = type(None) in args
        (tp,) = [a for a in args if a is not type(None)]
    origin = typing.get_origin(tp)
    return (origin if origin is not None else tp), nullable


_KINDS: Final[dict[str, tuple[type, bool]]] = {
    f.name: _field_kind(f.type) for f in msgspec.structs.fields(Settings)
}


class _Invalid(ValueError):
    """A value is wrong; the caller, who knows the name it came under, words the ConfigError."""


def _error(label: str, name: str, value: object, reason: str) -> ConfigError:
    return ConfigError(f"{label}={redact_value(name, value)!r} {reason}")


# --- normalizers shared with the loader and logging ---------------------------------------------
def normalize_log_level(value: object) -> str:
    """Upper-cased level name; raises ValueError for anything that is not one of LOG_LEVELS."""
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise _Invalid(f"is not a log level (expected one of {', '.join(LOG_LEVELS)})")


def normalize_backend_type(value: object) -> str:
    """Lower-cased backend name with aliases resolved (``postgresql`` -> ``postgres``)."""
    if isinstance(value, str):
        name = value.strip().lower()
        name = BACKEND_ALIASES.get(name, name)
        if name in BACKEND_TYPES:
            return name
    raise _Invalid(f"is not a backend type (expected one of {', '.join(sorted(BACKEND_TYPES))})")


def normalize_worker_type(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in WORKER_TYPES:
        return value.strip().lower()
    raise _Invalid(f"is not a worker type (expected one of {', '.join(sorted(WORKER_TYPES))})")


def normalize_component(name: object) -> str:
    """``"omniq.storage.redis"`` and ``"storage.redis"`` name the same component logger."""
    if not isinstance(name, str):
        raise _Invalid("is not a component name")
    text = name.strip()
    if text == "omniq":
        return ""
    text = text.removeprefix("omniq.")
    if not text or any(not part or part != part.strip() for part in text.split(".")):
        raise _Invalid("is not a component name (expected e.g. 'worker' or 'storage.redis')")
    return text


def normalize_component_levels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _Invalid("is not a mapping of component names to log levels")
    out: dict[str, str] = {}
    for component, level in value.items():
        try:
            key = normalize_component(component)
        except _Invalid as exc:
            raise _Invalid(f"has a bad component name: {component!r} {exc}") from None
        try:
            out[key] = normalize_log_level(level)
        except _Invalid as exc:
            raise _Invalid(f"has a bad level for {component!r}: {level!r} {exc}") from None
    return out


# --- per-field rules ----------------------------------------------------------------------------
def _at_least(minimum: int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value < minimum:
            raise _Invalid(f"must be at least {minimum}")
        return value

    return check


def _positive_seconds(value: Any) -> Any:
    if value <= 0:
        raise _Invalid("must be greater than 0 seconds (leave it empty for no limit)")
    return value


def _non_negative_seconds(value: Any) -> Any:
    if value < 0:
        raise _Invalid("must be 0 seconds or more")
    return value


def _port(value: Any) -> Any:
    if not 0 <= value <= 65535:
        raise _Invalid("is not a TCP port (0-65535)")
    return value


def _url(value: Any) -> Any:
    """The shape every backend URL shares, checked when the setting is read so that the error
    names the variable; whether the scheme names a backend is checked where it is used."""
    scheme, sep, rest = str(value).partition("://")
    if not sep or not scheme or not scheme[0].isalpha():
        raise _Invalid(
            "is not a URL: it needs a scheme, e.g. sqlite:///path/to/file.db, "
            "postgresql://user@host/db or redis://host:6379/0"
        )
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if "," not in host:  # a list of nodes (Sentinel, Cluster) is the backend's to parse
        try:
            _ = urlsplit(str(value)).port
        except ValueError:
            raise _Invalid(f"has a port that is not a number 0-65535 (in {host!r})") from None
    return value


def setting_source(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Where setting ``name`` came from, for error messages: the environment variable that set
    it (an alias included), else the constant in :mod:`omniq.config.settings`."""
    found = _lookup(os.environ if environ is None else environ, name)
    return found[0] if found is not None else f"omniq.config.settings.{name}"


_RULES: Final[dict[str, Callable[[Any], Any]]] = {
    "LOG_LEVEL": normalize_log_level,
    "COMPONENT_LOG_LEVELS": normalize_component_levels,
    "TASK_QUEUE_TYPE": normalize_backend_type,
    "RESULT_STORAGE_TYPE": normalize_backend_type,
    "EVENT_STORAGE_TYPE": normalize_backend_type,
    "DEFAULT_WORKER": normalize_worker_type,
    "MAX_WORKERS": _at_least(1),
    "THREAD_WORKERS": _at_least(1),
    "PROCESS_WORKERS": _at_least(1),
    "GEVENT_WORKERS": _at_least(1),
    "RETRY_ATTEMPTS": _at_least(0),
    "TASK_TIMEOUT": _positive_seconds,
    "TASK_TTL": _positive_seconds,
    "LEASE_TIMEOUT": _positive_seconds,
    "RETRY_DELAY": _non_negative_seconds,
    "RESULT_TTL": _non_negative_seconds,
    "BREAKER_THRESHOLD": _at_least(0),
    "BREAKER_COOLDOWN": _positive_seconds,
    "RESULT_BUFFER": _at_least(1),
    "DASHBOARD_PORT": _port,
    "TASK_QUEUE_URL": _url,
    "RESULT_STORAGE_URL": _url,
    "EVENT_STORAGE_URL": _url,
}


def _typed(name: str, value: Any) -> Any:
    """Checks a value already in Python form against the field's type (ints are taken as floats)."""
    kind, nullable = _KINDS[name]
    if value is None:
        if nullable:
            return None
        raise _Invalid("must be set")
    if kind is bool:
        if not isinstance(value, bool):
            raise _Invalid("is not a boolean")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("is not an integer")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid("is not a number")
        if not math.isfinite(value):
            raise _Invalid("is not a finite number")
        return float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise _Invalid("is not a string")
        if not value.strip():
            if nullable:
                return None
            raise _Invalid("must not be empty")
    elif kind is dict and not isinstance(value, Mapping):
        raise _Invalid("is not a mapping")
    return value


def _check(name: str, value: Any) -> Any:
    value = _typed(name, value)
    rule = _RULES.get(name)
    return value if value is None or rule is None else rule(value)


def _validated(name: str, value: Any, *, label: str) -> Any:
    try:
        return _check(name, value)
    except _Invalid as exc:
        raise _error(label, name, value, str(exc)) from None


def _parse(name: str, raw: str) -> Any:
    """The Python value of one environment string, before the field's rules."""
    kind, nullable = _KINDS[name]
    text = raw if name == "SECRET_KEY" else raw.strip()
    lowered = text.lower()
    if nullable and (
        text == ""
        or (kind is not str and lowered in _NONE_WORDS)
        or (name == "ALLOW_DILL" and lowered == "auto")
    ):
        return None
    if kind is bool:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _Invalid("is not a boolean (expected 1/0, true/false, yes/no or on/off)")
    if kind is int:
        try:
            return int(text, 10)
        except ValueError:
            raise _Invalid("is not an integer") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise _Invalid("is not a number") from None
    if kind is dict:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _Invalid(f"is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _Invalid('is not a JSON object (expected e.g. {"worker": "DEBUG"})')
        return data
    return text


def _from_env(name: str, var: str, raw: str) -> Any:
    try:
        return _check(name, _parse(name, raw))
    except _Invalid as exc:
        raise _error(var, name, raw, str(exc)) from None


def _lookup(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    for var in (f"{ENV_PREFIX}{name}", *ENV_ALIASES.get(name, ())):
        raw = env.get(var)
        if raw is not None:
            return var, raw
    return None


def env_var_names() -> list[str]:
    """Every variable OmniQ's settings read, aliases included (for docs and ``omniq config``)."""
    names = [f"{ENV_PREFIX}{n}" for n in Settings.__struct_fields__]
    for aliases in ENV_ALIASES.values():
        names.extend(aliases)
    return names


def _warn_about_typos(env: Mapping[str, str]) -> None:
    # A misspelt variable is otherwise ignored without a trace; only near-misses are reported so
    # that other tools' OMNIQ_* variables stay quiet.
    known = env_var_names()
    known_set = set(known)
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in known_set:
            close = difflib.get_close_matches(var, known, n=1, cutoff=0.85)
            if close:
                warnings.warn(
                    f"{var} is not an OmniQ setting and is ignored; did you mean {close[0]}?",
                    UserWarning,
                    stacklevel=3,
                )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Builds Settings from the constants of :mod:`omniq.config.settings` and ``environ``.

    The constants are read at call time, not import time, so that an application that assigns one
    (``omniq.config.settings.TASK_QUEUE_TYPE = "redis"``) sees it on the next load. ``environ``
    defaults to ``os.environ``; tests pass a dict instead of touching the process environment.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    from_env: set[str] = set()
    for name in Settings.__struct_fields__:
        found = _lookup(env, name)
        if found is not None:
            values[name] = _from_env(name, *found)
            from_env.add(name)
        else:
            default = copy.copy(getattr(_defaults, name))
            values[name] = _validated(name, default, label=f"omniq.config.settings.{name}")
    first, second = _URI_PAIR
    if (first in from_env) != (second in from_env):
        given = first if first in from_env else second
        values[first] = values[second] = values[given]
    _warn_about_typos(env)
    return Settings(**values)


_cached: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The process-wide settings, loaded from the environment on first use and then cached."""
    global _cached
    current = _cached
    if current is None:
        with _lock:
            if _cached is None:
                _cached = load_settings()
            current = _cached
    return current


def reload_settings() -> Settings:
    """Re-reads the environment and the settings module (after either changed)."""
    global _cached
    with _lock:
        _cached = None
        _cached = load_settings()
        return _cached


__all__ = [
    "BACKEND_ALIASES",
    "BACKEND_TYPES",
    "ENV_ALIASES",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "WORKER_TYPES",
    "Settings",
    "env_var_names",
    "get_settings",
    "load_settings",
    "normalize_backend_type",
    "normalize_component",
    "normalize_component_levels",
    "normalize_log_level",
    "normalize_worker_type",
    "reload_settings",
    "setting_source",
]

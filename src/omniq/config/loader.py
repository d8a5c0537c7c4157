"""Configuration files and dicts: YAML loading and conversion to :class:`OmniQConfig`.

Every failure becomes a :class:`~omniq.exceptions.ConfigError` that names the file (or ``config``
for a dict) and the offending key path, because a config file is usually edited far from the code
that reads it and a bare ``KeyError`` or msgspec message does not say where to look.

String values may refer to the environment as ``${VAR}`` or ``${VAR:-default}`` (the default is
used when VAR is unset or empty), so that passwords need not be written into the file; ``$${``
stands for a literal ``${``. Values stay strings after substitution: typed structs convert them
(``port: ${PG_PORT}`` becomes an int in a struct that declares one), and a password that looks
like a number is not mangled.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from omniq.config.env import normalize_backend_type, normalize_worker_type
from omniq.exceptions import ConfigError
from omniq.models.config import ComponentSpec, OmniQConfig, WorkerSpec

ConfigSource = OmniQConfig | Mapping[str, Any] | str | os.PathLike[str]

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_yaml(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    interpolate: bool = True,
) -> dict[str, Any]:
    """The top-level mapping of a YAML file (``{}`` for an empty file), ``${VAR}`` substituted.

    ``yaml.safe_load`` only: a config file must never be able to construct arbitrary objects.
    ``environ`` defaults to ``os.environ``.
    """
    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {where} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {where} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {where} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {where} cannot be read: {exc.strerror or exc}") from None
    import yaml  # here, not at import: a worker started without a config file never needs it

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"config file {where} is not valid YAML{position}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {where} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {where} must hold a mapping at the top level, not a {type(data).__name__}"
        )
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"config file {where}: top-level key {key!r} is not a string")
    if interpolate:
        env = os.environ if environ is None else environ
        substituted: dict[str, Any] = _interpolate(data, env, where, "")
        return substituted
    return data


def _interpolate(value: Any, env: Mapping[str, str], origin: str, at: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name is None:  # "$${": an escaped literal "${"
                return "${"
            found = env.get(name)
            if found:
                return found
            if default is not None:
                return default
            if found is not None:  # set but empty, and no default: empty is what was asked for
                return found
            raise ConfigError(
                f"config file {origin}: {at or 'value'} refers to ${{{name}}}, which is not set "
                f"in the environment (write ${{{name}:-default}} to give a default)"
            )

        return _REFERENCE.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, env, origin, f"{at}.{k}" if at else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, env, origin, f"{at}[{i}]") for i, v in enumerate(value)]
    return value


def load_config(
    source: ConfigSource,
    *,
    environ: Mapping[str, str] | None = None,
) -> OmniQConfig:
    """An :class:`OmniQConfig` from itself, a dict, or the path of a YAML file (seeds/003 shape).

    A component may be a mapping ``{type, url, config}`` or just a URL string
    (``task_queue: redis://localhost:6379/0``); the worker may be just its type
    (``worker: thread_pool``). Backend and worker types are checked and normalized
    (``postgresql`` -> ``postgres``); unknown keys are errors, with a suggestion, rather than
    silently ignored settings. ``environ`` is used for ``${VAR}`` in YAML files.
    """
    if isinstance(source, OmniQConfig):
        return source
    if isinstance(source, Mapping):
        origin = "config"
        data: dict[str, Any] = dict(source)
    elif isinstance(source, str | os.PathLike):
        origin = f"config file {os.fspath(source)}"
        data = load_yaml(source, environ=environ)
    else:
        raise TypeError(
            f"load_config() takes an OmniQConfig, a dict or a path, not {type(source).__name__}"
        )
    data = _normalize(data, origin)
    try:
        config = msgspec.convert(data, OmniQConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    for field in _COMPONENT_ATTRIBUTES:
        spec = getattr(config, field)
        if isinstance(spec, ComponentSpec) and spec.config:
            _check_options(spec, field, config.project_name, origin)
    if config.worker is not None and config.worker.config:
        _check_worker_options(config.worker, origin)
    return config


#: OmniQConfig's component fields -> the backend bundle's attribute that builds that component
_COMPONENT_ATTRIBUTES: Final = {
    "task_queue": "queue",
    "result_store": "result_storage",
    "event_store": "event_storage",
}
_UNEXPECTED = re.compile(r"unexpected keyword argument '([^']+)'")


def _check_options(spec: ComponentSpec, field: str, project: str, origin: str) -> None:
    """Reports an option that no component of the backend takes, with the file, the key path
    and the nearest option it does take, instead of a ``TypeError`` from a constructor when the
    application starts (or, where a bundle passes each component only the options it knows,
    instead of nothing at all). Then builds the component once (constructors do no I/O) so that
    a bad value is reported with the same place."""
    from omniq.backend import create_backend
    from omniq.exceptions import BackendUnavailable

    at = f"{field}.config"
    try:
        backend = create_backend(spec.type, spec.url, project_name=project)
        for key in spec.config:
            if not _takes(backend, key, spec.config[key]):
                raise ConfigError(
                    f"{origin}: {at}: unknown key {key!r}{_nearest_option(backend, key)}"
                )
        options = {"project_name": project, **spec.config}
        getattr(create_backend(spec.type, spec.url, **options), _COMPONENT_ATTRIBUTES[field])
    except BackendUnavailable:
        return  # its driver is missing: creating it says which extra to install
    except ConfigError as exc:
        if str(exc).startswith(origin):
            raise
        raise ConfigError(f"{origin}: {at}: {exc}") from None


def _takes(backend: Any, key: str, value: Any) -> bool:
    """Whether a component of ``backend`` takes option ``key``: its constructor is the authority
    (an option refused as an unexpected keyword is not taken; one refused for its value is)."""
    from omniq.exceptions import BackendUnavailable

    for build in (
        backend.create_task_queue,
        backend.create_result_storage,
        backend.create_event_storage,
    ):
        try:
            build(**{key: value})
        except TypeError as exc:
            found = _UNEXPECTED.search(str(exc))
            if found is not None and found.group(1) == key:
                continue
            return True
        except BackendUnavailable:
            continue  # a component this backend does not have
        except Exception:  # the name was taken; its value (or the rest) was refused
            return True
        return True
    return False


def _nearest_option(backend: Any, key: str) -> str:
    """``; did you mean 'base_dir'?``: the closest name among every config struct's fields that
    a component of ``backend`` really takes."""
    from omniq.models.config import ConfigStruct

    names: set[str] = set()
    pending: list[type] = [ConfigStruct]
    while pending:
        struct = pending.pop()
        pending.extend(struct.__subclasses__())
        names.update(getattr(struct, "__struct_fields__", ()))
    for candidate in difflib.get_close_matches(key, sorted(names), n=5, cutoff=0.6):
        if _takes(backend, candidate, None):
            return f"; did you mean {candidate!r}?"
    return ""


def _check_worker_options(spec: WorkerSpec, origin: str) -> None:
    from omniq.workers import worker_class

    try:
        cls = worker_class(spec.type)
    except ConfigError:
        return  # an unavailable type (gevent not installed): starting the worker reports it
    takes = cls.keyword_names()
    for key in spec.config:
        if key not in takes:
            raise _unknown_key(origin, "worker.config", key, tuple(takes))


def _describe(exc: msgspec.ValidationError, origin: str) -> str:
    """``Expected `int`, got `str` - at `$.worker.config`` -> ``<origin>: worker.config: ...``."""
    message = str(exc)
    reason, sep, at = message.rpartition(" - at `")
    if not sep:
        return f"{origin}: {message}"
    field = at.rstrip("`").removeprefix("$").removeprefix(".")
    return f"{origin}: {field}: {reason}" if field else f"{origin}: {reason}"


def _spec_fields() -> dict[str, type]:
    """Fields of OmniQConfig whose value is a component or worker spec, found by their types so
    that a field added to the model is handled without touching this module."""
    found: dict[str, type] = {}
    for field in msgspec.structs.fields(OmniQConfig):
        for candidate in (field.type, *typing.get_args(field.type)):
            if candidate in (ComponentSpec, WorkerSpec):
                found[field.name] = candidate
    return found


_SPEC_FIELDS: Final = _spec_fields()


def _unknown_key(origin: str, at: str, key: object, allowed: tuple[str, ...]) -> ConfigError:
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (expected {', '.join(allowed)})"
    where = f"{at}: " if at else ""
    return ConfigError(f"{origin}: {where}unknown key {key!r}{hint}")


def _normalize(data: dict[str, Any], origin: str) -> dict[str, Any]:
    allowed = tuple(OmniQConfig.__struct_fields__)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            raise _unknown_key(origin, "", key, allowed)
        spec = _SPEC_FIELDS.get(key)
        out[key] = value if spec is None else _normalize_spec(spec, value, origin, key)
    return out


def _normalize_spec(spec: type, value: Any, origin: str, at: str) -> Any:
    is_worker = spec is WorkerSpec
    if isinstance(value, str):
        value = {"type": value} if is_worker else {"url": value}
    if not isinstance(value, Mapping):
        return value  # msgspec reports the wrong type with its path
    allowed = tuple(WorkerSpec.__struct_fields__ if is_worker else ComponentSpec.__struct_fields__)
    out = dict(value)
    for key in out:
        if key not in allowed:
            raise _unknown_key(origin, at, key, allowed)
    kind = out.get("type")
    if isinstance(kind, str):
        try:
            out["type"] = normalize_worker_type(kind) if is_worker else normalize_backend_type(kind)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {at}.type={kind!r} {exc}") from None
    if out.get("config") is None and "config" in out:
        del out["config"]  # "config:" with nothing under it means no options, not an error
    return out


__all__ = ["ConfigSource", "load_config", "load_yaml"]

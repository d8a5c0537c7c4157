"""Keeping secrets out of logs and reprs: passwords in URLs and secret-looking fields are masked."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_SECRET_NAMES = re.compile(r"(password|passwd|secret|token|account_key|api_key|private_key)", re.I)
_SECRET_QUERY = re.compile(
    r"((?:^|&)[^=&]*(?:password|passwd|secret|token|account_key|api_key|private_key)[^=&]*=)[^&]*",
    re.I,
)
_SECRET_QUERY_IN_TEXT = re.compile(
    r"([?&][^=&\s]*(?:password|passwd|secret|token|account_key|api_key|private_key)[^=&\s]*=)"
    r"[^&\s'\"]*",
    re.I,
)
_URL_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@")


def redact_url(url: str) -> str:
    """``redis://user:pw@host/0`` -> ``redis://user:***@host/0``; a secret-looking query option
    (``?sentinel_password=pw``) is masked too; anything unparsable is left alone."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # a malformed URL must never break the error message that shows it
        return _URL_IN_TEXT.sub(rf"\1\2:{MASK}@", url)
    query = _SECRET_QUERY.sub(rf"\1{MASK}", parts.query)
    if password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")  # host kept as written (IPv6 brackets, case)
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Masks credentials in every URL found inside free text (for log messages and errors)."""
    return _SECRET_QUERY_IN_TEXT.sub(rf"\1{MASK}", _URL_IN_TEXT.sub(rf"\1\2:{MASK}@", text))


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAMES.search(name))


def redact_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(name, v) for v in value)
    return value

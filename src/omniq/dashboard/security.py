"""Who may use the dashboard, and proof that an action came from its own pages.

- Credentials: a bearer token (``Authorization: Bearer …``, or once in ``?token=`` which sets an
  HttpOnly cookie so the browser keeps it) and/or HTTP basic auth. Bound to anything but a loopback
  address, the dashboard refuses to start without one of them.
- CSRF: every unsafe request (POST…) must carry ``X-CSRF-Token`` equal to the ``omniq_csrf``
  cookie (double submit: another site can neither read that cookie nor set the header on a
  cross-site request), and an ``Origin`` header, when sent, must be this host. A request that
  proves itself with an ``Authorization: Bearer`` header is exempt: browsers never add that header
  on their own, so no other site can make one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from omniq.exceptions import ConfigError

CSRF_COOKIE = "omniq_csrf"
TOKEN_COOKIE = "omniq_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Credentials:
    """``token`` and/or ``basic`` (``user:password``); both None means open (loopback only)."""

    token: str | None = None
    basic: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < 16:
            raise ConfigError(
                f"the dashboard token must be at least 16 characters, got {len(self.token)}"
            )
        if self.basic is not None:
            user, sep, password = self.basic.partition(":")
            if not sep or not user or not password:
                raise ConfigError(
                    "dashboard basic auth must look like 'user:password' (both non-empty)"
                )

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic is not None

    def check_bind(self, host: str) -> None:
        """Refuses to expose an open dashboard beyond this machine."""
        if not self.required and not is_loopback(host):
            raise ConfigError(
                f"the dashboard would listen on {host!r}, beyond loopback, without credentials: "
                "set OMNIQ_DASHBOARD_TOKEN (or --token) or OMNIQ_DASHBOARD_AUTH=user:password "
                "(or --auth), or bind to 127.0.0.1"
            )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is as good as none
        return {}
    return {k: m.value for k, m in jar.items()}


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class SecurityMiddleware:
    """Authentication, then CSRF, before any route runs. The page's CSRF token is put in
    ``scope["state"]["csrf"]`` for the templates, and its cookie set when the browser lacks it."""

    def __init__(self, app: ASGIApp, credentials: Credentials) -> None:
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        cookies = _cookies(headers)
        bearer = self._bearer(headers)
        set_cookies: list[str] = []
        if self.credentials.required:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            from_query = query["token"][0] if query.get("token") else None
            if from_query is not None and _same(from_query, self.credentials.token):
                # the link a person was given: keep the token in a cookie and drop it from the URL
                rest = {k: v for k, v in query.items() if k != "token"}
                location = scope.get("root_path", "") + scope["path"]
                if rest:
                    location += "?" + urlencode(rest, doseq=True)
                await self._send(
                    send,
                    303,
                    b"",
                    [
                        (b"location", location.encode()),
                        (b"set-cookie", self._cookie(TOKEN_COOKIE, from_query).encode()),
                    ],
                )
                return
            if not self._authenticated(bearer, headers, cookies):
                extra = []
                if self.credentials.basic is not None:
                    extra.append((b"www-authenticate", b'Basic realm="OmniQ dashboard"'))
                await self._send(send, 401, b"authentication required\n", extra)
                return
        method = scope["method"]  # type: ignore[typeddict-item]
        if method not in SAFE_METHODS and not (
            bearer is not None and _same(bearer, self.credentials.token)
        ):
            problem = self._csrf_problem(scope, headers, cookies)
            if problem:
                await self._send(send, 403, problem.encode() + b"\n", [])
                return
        csrf = cookies.get(CSRF_COOKIE)
        if not csrf or len(csrf) < 20:
            csrf = secrets.token_urlsafe(24)
            set_cookies.append(self._cookie(CSRF_COOKIE, csrf))
        scope.setdefault("state", {})["csrf"] = csrf

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and set_cookies:
                message["headers"] = [
                    *message.get("headers", []),
                    *((b"set-cookie", c.encode()) for c in set_cookies),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cookies)

    @staticmethod
    def _bearer(headers: dict[str, str]) -> str | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def _authenticated(
        self, bearer: str | None, headers: dict[str, str], cookies: dict[str, str]
    ) -> bool:
        token = self.credentials.token
        if token is not None and (_same(bearer, token) or _same(cookies.get(TOKEN_COOKIE), token)):
            return True
        basic = self.credentials.basic
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if basic is not None and scheme.lower() == "basic":
            try:
                given = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(given, basic)
        return False

    @staticmethod
    def _csrf_problem(scope: Scope, headers: dict[str, str], cookies: dict[str, str]) -> str:
        origin = headers.get("origin")
        if origin and origin != "null":
            host = headers.get("host", "")
            if urlsplit(origin).netloc != host:
                return f"cross-origin request refused (Origin {origin!r}, host {host!r})"
        if not _same(headers.get(CSRF_HEADER), cookies.get(CSRF_COOKIE)):
            return (
                "missing or wrong X-CSRF-Token header: actions come from the dashboard's pages, "
                "or carry 'Authorization: Bearer <token>'"
            )
        return ""

    @staticmethod
    def _cookie(name: str, value: str) -> str:
        return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"

    @staticmethod
    async def _send(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        start: Any = {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *headers],
        }
        await send(start)
        message: Any = {"type": "http.response.body", "body": body}
        await send(message)


__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "TOKEN_COOKIE",
    "Credentials",
    "SecurityMiddleware",
    "is_loopback",
]

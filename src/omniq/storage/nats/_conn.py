"""What the three NATS components share: the connection, the names of the project's stream,
buckets and subjects, idempotent creation of each, and the translation of driver errors.

Server features used, and from which NATS version (all present on 2.9):

- JetStream work-queue streams and durable pull consumers (2.2); KV buckets (2.6.2);
- ``-NAK`` with a delay, which holds retries *and* delayed tasks (``eta``) on the server until
  they are due (2.7.1);
- direct gets on the KV bucket (``allow_direct``, 2.9), which spread reads over every replica;
- the subject list of stream info paged with ``offset`` (2.9): listing keys past 100,000.

Newer servers change nothing in the design: message scheduling (2.12) and per-message TTLs
(2.11) are not needed, because a nak with a delay already holds a message until a given time and
the result bucket expires entries by its ``max_age``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from omniq.exceptions import BackendUnavailable, ConfigError
from omniq.storage.base import Component
from omniq.storage.nats._kv import Bucket
from omniq.storage.nats._pipe import Pipeline

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import (
        AckPolicy,
        ConsumerConfig,
        DeliverPolicy,
        DiscardPolicy,
        KeyValueConfig,
        RetentionPolicy,
        StorageType,
        StreamConfig,
    )
    from nats.js.kv import KeyValue
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the NATS backend needs the 'nats-py' package: pip install 'omniq-tasks[nats]'",
        name=exc.name,
    ) from exc

T = TypeVar("T")
log = logging.getLogger("omniq.storage.nats")

#: Errors that mean the server (or the cluster's JetStream) did not do what was asked.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    OSError,
    asyncio.TimeoutError,
)
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_SAFE_KEY = re.compile(r"[A-Za-z0-9_=-]+")
DEFAULT_SERVER = "nats://127.0.0.1:4222"


def name_token(value: str) -> str:
    """A project or queue name as one stream/bucket-name and subject token: letters, digits, '_'
    and '-' stay as they are; anything else ('.' is allowed in queue names but separates subject
    tokens) is replaced, with a short hash so that two names never meet."""
    if _SAFE_TOKEN.fullmatch(value):
        return value
    digest = hashlib.blake2b(value.encode(), digest_size=4).hexdigest()
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', value)}_{digest}"


def key_token(value: str) -> str:
    """A task or schedule id as one KV key token. Ids of safe characters (every generated id)
    stay as they are; any other id is hex-encoded as ``x.<hex>``, which no safe id can be (safe
    ids have no '.')."""
    if _SAFE_KEY.fullmatch(value):
        return value
    return "x." + value.encode().hex()


def display_servers(servers: list[str]) -> str:
    """Where the client connects, for messages: scheme, host and port only, never credentials
    (a token sits in a NATS URL's user part, where generic password masking would miss it)."""
    shown = []
    for server in servers:
        try:
            parts = urlsplit(server if "://" in server else f"nats://{server}")
            host = parts.hostname or "?"
            port = f":{parts.port}" if parts.port else ""
            shown.append(f"{parts.scheme}://{host}{port}")
        except ValueError:
            shown.append("<unparsable address>")
    return ", ".join(shown)


def split_url(url: str) -> tuple[list[str], dict[str, Any]]:
    """``nats://user:pw@a:4222,b:4222`` -> servers and credentials, checked early so that a bad
    URL is named before any connection is tried."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("nats", "tls", "ws", "wss"):
        raise ConfigError(
            f"not a NATS URL: {display_servers([url])!r} (use nats://host:4222 or tls://...)"
        )
    auth: dict[str, Any] = {}
    userinfo, at, hosts = rest.rpartition("@")
    if not at:
        hosts = rest
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    if not hosts:
        raise ConfigError(f"NATS URL {display_servers([url])!r} names no host")
    if userinfo:
        from urllib.parse import unquote

        user, colon, password = userinfo.partition(":")
        if colon:
            auth["user"], auth["password"] = unquote(user), unquote(password)
        else:
            auth["token"] = unquote(user)
    if scheme.lower() == "tls":
        auth["tls"] = True
    servers = [f"{scheme}://{h.strip()}" for h in hosts.split(",") if h.strip()]
    return servers, auth


class Names:
    """Every name one project uses on the server, derived once from the config."""

    def __init__(self, project: str, options: dict[str, Any]) -> None:
        token = name_token(project)
        self.subject_prefix = f"{options['subject_prefix']}.{token}"
        self.stream = f"{options['stream_prefix']}_{token}"
        bucket = f"{options['bucket_prefix']}_{token}"
        self.tasks_bucket = f"{bucket}_TASKS"
        self.results_bucket = f"{bucket}_RESULTS"
        self.events_stream = f"{bucket}_EVENTS"
        self.events_subject = f"{self.subject_prefix}.events"

    def queue_subject(self, queue: str) -> str:
        return f"{self.subject_prefix}.q.{name_token(queue)}"

    def consumer(self, queue: str) -> str:
        return f"omniq_q_{name_token(queue)}"


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext | None:
    if not (options.get("tls") or options.get("tls_ca_file") or options.get("tls_cert_file")):
        return None
    context = ssl.create_default_context(cafile=options.get("tls_ca_file"))
    if options.get("tls_cert_file"):
        context.load_cert_chain(options["tls_cert_file"], options.get("tls_key_file"))
    return context


class NATSComponent(Component):
    """The connection and the names of one project, shared by queue, results and events."""

    backend_name = "nats"
    is_local = False

    _OPTIONS = (
        "servers",
        "url",
        "user",
        "password",
        "token",
        "nkeys_seed",
        "user_credentials",
        "tls",
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "connect_timeout",
        "request_timeout",
        "stream_prefix",
        "subject_prefix",
        "bucket_prefix",
        "replicas",
        "ack_wait",
        "task_record_ttl",
        "events_max_age",
    )

    def __init__(self, **options: Any) -> None:
        from omniq.storage.nats.config import NATSConfig

        mine = {k: options.pop(k) for k in list(options) if k in self._OPTIONS}
        super().__init__(**options)
        try:
            config = NATSConfig(**mine)
        except TypeError as exc:
            raise ConfigError(f"invalid NATS option: {exc}") from None
        self.config = config
        self._servers, auth = (
            split_url(config.url) if config.url else (list(config.servers or [DEFAULT_SERVER]), {})
        )
        if not self._servers:
            raise ConfigError("NATS servers list is empty: name at least one nats://host:port")
        self._auth = {
            "user": auth.get("user", config.user),
            "password": auth.get("password", config.password),
            "token": auth.get("token", config.token),
            "nkeys_seed": config.nkeys_seed,
            "user_credentials": config.user_credentials,
        }
        self._tls = _ssl_context({**config.to_dict(), **({"tls": True} if auth.get("tls") else {})})
        if config.replicas < 1:
            raise ConfigError(f"replicas must be >= 1, got {config.replicas!r}")
        self.names = Names(self.project_name, config.to_dict())
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._pipe: Pipeline | None = None

    @property
    def where(self) -> str:
        return display_servers(self._servers)

    def server_label(self) -> str:
        return f"NATS at {self.where}"

    def _unavailable(self, exc: BaseException, doing: str) -> BackendUnavailable:
        if isinstance(exc, nats.js.errors.ServiceUnavailableError) and not exc.description:
            # a bare 503: nothing serves the JetStream API, the server's default (the driver's
            # own text, "code=None err_code=None description='None'", says nothing of it)
            return BackendUnavailable(
                f"NATS at {self.where} failed while {doing}: JetStream is not enabled there "
                "(start nats-server with -js, or give the account JetStream)"
            )
        detail = str(exc) or type(exc).__name__
        for secret in (self._auth["password"], self._auth["token"]):
            if secret:
                detail = detail.replace(secret, "***")
        return BackendUnavailable(
            f"NATS at {self.where} failed while {doing}: {type(exc).__name__}: {detail}"
        )

    @contextlib.asynccontextmanager
    async def guard(self, doing: str) -> AsyncIterator[None]:
        """Driver errors come out as :class:`BackendUnavailable` naming the server, never its
        credentials; the callers' own control-flow errors pass through untouched."""
        try:
            yield
        except BackendUnavailable:
            raise
        except DRIVER_ERRORS as exc:
            raise self._unavailable(exc, doing) from exc

    async def call(self, doing: str, make: Callable[[], Awaitable[T]]) -> T:
        async with self.guard(doing):
            return await make()

    async def _connect(self) -> None:
        options: dict[str, Any] = {
            "servers": self._servers,
            "connect_timeout": self.config.connect_timeout,
            # the first connection gives up soon (a wrong address is reported, not retried
            # for ever); once connected, the client reconnects without limit (see below)
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0.5,
            "allow_reconnect": True,
            "name": f"omniq:{self.project_name}",
            "error_cb": self._on_error,
            "reconnected_cb": self._on_reconnected,
        }
        options.update({k: v for k, v in self._auth.items() if v})
        if self._tls is not None:
            options["tls"] = self._tls
        try:
            self.nc = await nats.connect(**options)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise self._unavailable(exc, "connecting") from exc
        self.nc.options["max_reconnect_attempts"] = -1
        self.js = self.nc.jetstream(timeout=self.config.request_timeout)
        try:
            self._pipe = Pipeline(self.nc, self.config.request_timeout)
            await self._pipe.start()
            await self._prepare()
        except BaseException:
            await self.nc.close()
            self.nc = self.js = self._pipe = None
            raise

    async def _on_error(self, exc: Exception) -> None:
        # the driver reconnects on its own; a line in the log is all a lost link deserves
        log.debug("NATS at %s: %s: %s", self.where, type(exc).__name__, exc)

    async def _on_reconnected(self) -> None:
        """The link came back: what only lived on the lost one (open pull requests) is gone."""

    async def _prepare(self) -> None:
        """Creates (or checks) what the component needs on the server."""

    async def _close(self) -> None:
        nc, self.nc, self.js, self._pipe = self.nc, None, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
            with contextlib.suppress(Exception):
                await nc.close()

    @property
    def jetstream(self) -> JetStreamContext:
        if self.js is None:
            raise BackendUnavailable(f"NATS at {self.where}: not connected")
        return self.js

    @property
    def pipe(self) -> Pipeline:
        if self._pipe is None:
            raise BackendUnavailable(f"NATS at {self.where}: not connected")
        return self._pipe

    # -- idempotent creation ---------------------------------------------------------------
    async def ensure_stream(self, config: StreamConfig) -> None:
        js = self.jetstream
        async with self.guard(f"creating stream {config.name}"):
            try:
                await js.stream_info(config.name)  # type: ignore[arg-type]
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_stream(config)
                except nats.js.errors.BadRequestError:
                    # created meanwhile by another process (same name, same subjects): fine
                    await js.stream_info(config.name)  # type: ignore[arg-type]

    async def ensure_work_stream(self) -> None:
        await self.ensure_stream(
            StreamConfig(
                name=self.names.stream,
                subjects=[f"{self.names.subject_prefix}.q.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=self.config.replicas,
                discard=DiscardPolicy.OLD,
                # a repeated enqueue of one id within two minutes is dropped by the server too
                duplicate_window=120.0,
            )
        )

    async def ensure_consumer(self, queue: str, ack_wait: float) -> str:
        """The durable pull consumer every worker of ``queue`` shares: exclusive delivery (the
        queue-group semantics of the seeds). Unlimited deliveries: the attempt count lives in the
        task record (per task), where MaxDeliver could only be one number for all."""
        js = self.jetstream
        name = self.names.consumer(queue)
        config = ConsumerConfig(
            durable_name=name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.names.queue_subject(queue),
            ack_wait=ack_wait,
            max_deliver=-1,
            # delayed tasks wait as unacknowledged messages: allow many of them
            max_ack_pending=-1,
            max_waiting=4096,
            num_replicas=self.config.replicas if self.config.replicas > 1 else None,
        )
        async with self.guard(f"creating consumer {name}"):
            try:
                info = await js.consumer_info(self.names.stream, name)
                if info.config.ack_wait != ack_wait:
                    await js.add_consumer(self.names.stream, config)
            except nats.js.errors.NotFoundError:
                await js.add_consumer(self.names.stream, config)
        return name

    async def ensure_bucket(self, bucket: str, ttl: float | None, history: int = 1) -> Bucket:
        kv = await self._key_value(bucket, ttl, history)
        return Bucket(kv, self.pipe, bool(kv._direct))

    async def _key_value(self, bucket: str, ttl: float | None, history: int) -> KeyValue:
        js = self.jetstream
        async with self.guard(f"creating KV bucket {bucket}"):
            try:
                return await js.key_value(bucket)
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
                pass
            try:
                return await js.create_key_value(
                    KeyValueConfig(
                        bucket=bucket,
                        history=history,
                        ttl=ttl,
                        storage=StorageType.FILE,
                        replicas=self.config.replicas,
                        direct=True,
                    )
                )
            except nats.js.errors.BadRequestError:
                return await js.key_value(bucket)


async def delete_project(component: NATSComponent) -> None:
    """Removes everything a project created on the server (tests, ``omniq purge --all``)."""
    js = component.jetstream
    names = component.names
    for stream in (
        names.stream,
        names.events_stream,
        f"KV_{names.tasks_bucket}",
        f"KV_{names.results_bucket}",
    ):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)


__all__ = [
    "DEFAULT_SERVER",
    "DRIVER_ERRORS",
    "Bucket",
    "NATSComponent",
    "Names",
    "delete_project",
    "display_servers",
    "key_token",
    "name_token",
    "split_url",
]

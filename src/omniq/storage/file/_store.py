"""The object-store layer: ``base_dir`` + ``storage_options`` -> an obstore store, and the few
operations the file backend needs (read, write, create-if-absent, compare-and-set, list, delete),
with obstore's errors translated into OmniQ's, naming the location and never the credentials.

obstore's stores differ in one way that matters here: ``LocalStore`` does not implement
``PutMode::Update`` (an etag-conditional overwrite). On a local folder the compare-and-set is
therefore an exclusive ``flock`` on a lock file beside the object, held for the check-and-write:
exact between processes of one machine, which is what a local folder is shared by.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import obstore
from obstore import exceptions as oe
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

from omniq.exceptions import BackendUnavailable, ConfigError

T = TypeVar("T")

# fsspec (s3fs, adlfs, gcsfs) option names of seed 003 -> obstore's, per store kind
_S3_NAMES = {
    "key": "access_key_id",
    "aws_access_key_id": "access_key_id",
    "secret": "secret_access_key",
    "aws_secret_access_key": "secret_access_key",
    "token": "session_token",
    "aws_session_token": "session_token",
    "endpoint_url": "endpoint",
    "region_name": "region",
    "anon": "skip_signature",
}
_AZURE_NAMES = {
    "account_url": "endpoint",
    "endpoint_url": "endpoint",
    "credential": "account_key",
    "anon": "skip_signature",
}
_GCS_NAMES = {"anon": "skip_signature", "endpoint_url": "base_url"}
#: What fsspec accepts and means nothing here: accepted and dropped rather than refused.
_IGNORED = frozenset(
    {"use_listings_cache", "listings_expiry_time", "skip_instance_cache", "asynchronous"}
)
_SECRET_QUERY = re.compile(r"\?[^\s\"']*")

#: ``memory://name`` stores, shared by every component of this process that names them.
_MEMORY: dict[str, MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


@dataclass(frozen=True)
class Location:
    """Where a file backend keeps its objects: the store, the key prefix, and a description
    for messages that holds no credential."""

    store: Any
    prefix: str  # "" or "a/b/" (always ends with "/")
    shown: str
    local_root: Path | None = None  # the folder, for a LocalStore

    def key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)


def _storage_option_map(kind: str) -> Mapping[str, str]:
    return {"s3": _S3_NAMES, "azure": _AZURE_NAMES, "gcs": _GCS_NAMES}.get(kind, {})


def _options_for(kind: str, options: Mapping[str, Any] | None, shown: str) -> dict[str, Any]:
    """fsspec-style names mapped to obstore's; obstore's own names pass through (obstore then
    refuses an unknown one, which :func:`translate` reports naming the option)."""
    out: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for name, value in dict(options or {}).items():
        if name in _IGNORED:
            continue
        if name == "client_kwargs" and isinstance(value, Mapping):  # s3fs: endpoint/region here
            for inner, inner_value in value.items():
                out[_S3_NAMES.get(str(inner), str(inner))] = inner_value
            continue
        if name == "client_options" and isinstance(value, Mapping):
            client.update(value)
            continue
        if kind == "gcs" and name == "token":
            # gcsfs: a path to a service-account JSON file, the key itself as a dict, or "anon"
            if value == "anon":
                out["skip_signature"] = True
            elif isinstance(value, Mapping):
                import json

                out["service_account_key"] = json.dumps(dict(value))
            else:
                out["service_account_path"] = str(value)
            continue
        if kind == "azure" and name == "connection_string":
            out.update(_azure_connection_string(str(value)))
            continue
        if kind == "azure" and name == "sas_token":
            out["sas_key"] = str(value).lstrip("?")
            continue
        out[_storage_option_map(kind).get(name, name)] = value
    if kind in ("s3", "azure", "gcs"):
        endpoint = out.get("endpoint") or out.get("base_url")
        if isinstance(endpoint, str) and endpoint.startswith("http://"):
            client.setdefault("allow_http", True)
        if kind == "s3" and "endpoint" in out and "region" not in out:
            out["region"] = "us-east-1"  # a custom endpoint (MinIO, moto) rarely cares
    if kind == "local" and out:
        raise ConfigError(
            f"storage_options {sorted(out)} mean nothing for the local folder {shown}"
        )
    if client:
        out["client_options"] = client
    return out


def _azure_connection_string(value: str) -> dict[str, Any]:
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    out: dict[str, Any] = {}
    if "AccountName" in parts:
        out["account_name"] = parts["AccountName"]
    if "AccountKey" in parts:
        out["account_key"] = parts["AccountKey"]
    if "BlobEndpoint" in parts:
        out["endpoint"] = parts["BlobEndpoint"]
    if "SharedAccessSignature" in parts:
        out["sas_key"] = parts["SharedAccessSignature"]
    return out


def open_location(
    base_dir: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> Location:
    """The store behind ``base_dir``: a local path or ``file://`` URL, ``memory://name``,
    ``s3://bucket/prefix``, ``gs://``/``gcs://bucket/prefix``, ``az://``/``abfs://``/
    ``abfss://container/prefix`` (or ``container@account.dfs.core.windows.net/prefix``)."""
    text = os.fspath(base_dir)
    if not text:
        raise ConfigError("base_dir must name a folder or a URL, got ''")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("", "file", "local"):
        path = Path(urlsplit(text).path if scheme else text).expanduser().absolute()
        _options_for("local", storage_options, str(path))
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the folder {str(path)!r} for the file backend: {exc.strerror}"
            ) from exc
        return Location(LocalStore(str(path)), "", str(path), local_root=path)
    parsed = urlsplit(text)
    head = parsed.netloc
    prefix = parsed.path.strip("/")
    if scheme == "memory":
        name = (head + "/" + prefix).strip("/")
        bucket, _, prefix = name.partition("/")
        _options_for("memory", storage_options, text)
        with _MEMORY_LOCK:
            store = _MEMORY.setdefault(bucket, MemoryStore())
        return Location(store, _as_prefix(prefix), f"memory://{name}")
    if not head:
        raise ConfigError(f"base_dir {text!r} names no bucket or container")
    if scheme == "s3":
        opts = _options_for("s3", storage_options, text)
        shown = f"s3://{head}/{prefix}".rstrip("/")
        if "endpoint" in opts:
            shown += f" at {opts['endpoint']}"
        return Location(_build(lambda: S3Store(head, **opts), shown), _as_prefix(prefix), shown)
    if scheme in ("gs", "gcs"):
        opts = _options_for("gcs", storage_options, text)
        shown = f"gs://{head}/{prefix}".rstrip("/")
        return Location(_build(lambda: GCSStore(head, **opts), shown), _as_prefix(prefix), shown)
    if scheme in ("az", "abfs", "abfss", "azure", "adl"):
        opts = _options_for("azure", storage_options, text)
        container, _, account_host = head.partition("@")
        if account_host and "account_name" not in opts:
            opts["account_name"] = account_host.split(".", 1)[0]
        shown = f"{scheme}://{container}/{prefix}".rstrip("/")
        if "endpoint" in opts:
            shown += f" at {opts['endpoint']}"
        return Location(
            _build(lambda: AzureStore(container, **opts), shown), _as_prefix(prefix), shown
        )
    raise ConfigError(
        f"base_dir {text!r}: unknown scheme {scheme!r} (use a path, file://, memory://, s3://, "
        "gs://, az:// or abfs://)"
    )


def _as_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _build(factory: Callable[[], Any], shown: str) -> Any:
    try:
        return factory()
    except oe.UnknownConfigurationKeyError as exc:
        raise ConfigError(f"storage_options for {shown}: {_clean(exc)}") from exc
    except (oe.BaseError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot open {shown}: {_clean(exc)}") from exc


def _clean(exc: BaseException) -> str:
    """The first line of an obstore error with any URL query (a SAS token) cut off."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _SECRET_QUERY.sub("?…", first)[:300]


class Conflict(Exception):
    """A compare-and-set lost: the object changed since it was read."""


class ObjectStore:
    """The operations of the file backend on one :class:`Location`, errors translated."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.store = location.store
        #: object requests sent, for the benchmarks' requests-per-task figure
        self.requests = 0

    @property
    def shown(self) -> str:
        return self.location.shown

    def key(self, *parts: str) -> str:
        return self.location.key(*parts)

    async def _call(self, what: str, key: str, op: Callable[[], Awaitable[T]]) -> T:
        self.requests += 1
        try:
            return await op()
        except FileNotFoundError as exc:
            # a missing object is an answer; a missing bucket or container is an error
            _raise_if_bucket_missing(exc, self.shown)
            raise
        except (oe.NotModifiedError, oe.AlreadyExistsError, oe.PreconditionError):
            raise
        except Exception as exc:
            raise translate(exc, self.shown, what, key) from exc

    async def read(self, key: str) -> tuple[bytes, str | None] | None:
        """The object's bytes and etag, or None when there is none."""
        try:
            got = await self._call("read", key, lambda: obstore.get_async(self.store, key))
            data = await got.bytes_async()
        except FileNotFoundError as exc:
            _raise_if_bucket_missing(exc, self.shown)
            return None
        return bytes(data), got.meta.get("e_tag")

    async def read_if_changed(
        self, key: str, etag: str | None
    ) -> tuple[bytes, str | None] | bool | None:
        """False when the object still has ``etag``; else as :meth:`read`."""
        if etag is None:
            return await self.read(key)
        try:
            got = await self._call(
                "read",
                key,
                lambda: obstore.get_async(self.store, key, options={"if_none_match": etag}),
            )
            data = await got.bytes_async()
        except oe.NotModifiedError:
            return False
        except FileNotFoundError as exc:
            _raise_if_bucket_missing(exc, self.shown)
            return None
        return bytes(data), got.meta.get("e_tag")

    async def read_ranges(self, key: str, spans: list[tuple[int, int]]) -> list[bytes] | None:
        try:
            got = await self._call(
                "read",
                key,
                lambda: obstore.get_ranges_async(
                    self.store, key, starts=[s for s, _ in spans], ends=[e for _, e in spans]
                ),
            )
        except FileNotFoundError:
            return None
        return [bytes(b) for b in got]

    async def write(self, key: str, data: bytes) -> None:
        await self._call("write", key, lambda: obstore.put_async(self.store, key, data))

    async def create(self, key: str, data: bytes) -> bool:
        """Writes ``data`` only where no object exists (If-None-Match); False if one did."""
        try:
            await self._call(
                "write", key, lambda: obstore.put_async(self.store, key, data, mode="create")
            )
        except (oe.AlreadyExistsError, oe.PreconditionError):
            return False
        return True

    async def swap(self, key: str, data: bytes, etag: str | None) -> str | None:
        """Compare-and-set: writes ``data`` if the object still has ``etag`` (or, with None, does
        not exist yet). Returns the new etag; raises :class:`Conflict` when someone else wrote."""
        if self.location.local_root is not None:
            return await self._local_swap(key, data, etag)
        mode: Any = "create" if etag is None else {"e_tag": etag}
        try:
            put = await self._call(
                "write", key, lambda: obstore.put_async(self.store, key, data, mode=mode)
            )
        except (oe.AlreadyExistsError, oe.PreconditionError, FileNotFoundError) as exc:
            if isinstance(exc, FileNotFoundError):
                _raise_if_bucket_missing(exc, self.shown)
            raise Conflict(key) from exc
        return put.get("e_tag")

    async def _local_swap(self, key: str, data: bytes, etag: str | None) -> str | None:
        assert self.location.local_root is not None
        lock_path = self.location.local_root / (key + ".lock")
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(None, _lock, lock_path)
        except OSError as exc:
            raise BackendUnavailable(
                f"{self.shown} is not writable (could not lock {key!r}: {exc.strerror})"
            ) from exc
        try:
            try:
                head = await self._call("read", key, lambda: obstore.head_async(self.store, key))
                current = head.get("e_tag")
            except FileNotFoundError:
                current = None
            if current != etag:
                raise Conflict(key)
            put = await self._call("write", key, lambda: obstore.put_async(self.store, key, data))
            return put.get("e_tag")
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        with contextlib.suppress(FileNotFoundError):
            await self._call("delete", keys[0], lambda: obstore.delete_async(self.store, keys))

    async def list(self, prefix: str, offset: str | None = None) -> list[dict[str, Any]]:
        """Every object under ``prefix`` (its ``path``, ``size``, ``e_tag``...); with ``offset``,
        only those whose key sorts after it."""
        self.requests += 1
        try:
            found: list[dict[str, Any]] = []
            async for chunk in obstore.list(self.store, prefix, offset=offset, chunk_size=1000):
                found.extend(dict(meta) for meta in chunk)
        except FileNotFoundError as exc:
            _raise_if_bucket_missing(exc, self.shown)
            return []
        except Exception as exc:
            raise translate(exc, self.shown, "list", prefix) from exc
        return [o for o in found if not o["path"].endswith(".lock")]


def _lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _raise_if_bucket_missing(exc: BaseException, shown: str) -> None:
    text = str(exc)
    if "NoSuchBucket" in text or "ContainerNotFound" in text or "bucket does not exist" in text:
        raise BackendUnavailable(f"the bucket or container of {shown} does not exist") from exc


def translate(exc: BaseException, shown: str, what: str, key: str) -> Exception:
    """An OmniQ error for a failed object request: where, what, why; no credential."""
    if isinstance(exc, BackendUnavailable | ConfigError):
        return exc
    text = str(exc)
    if isinstance(exc, oe.UnauthenticatedError | oe.PermissionDeniedError) or any(
        marker in text
        for marker in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AuthenticationFailed",
            "AuthorizationFailure",
            "AccessDenied",
            "403 Forbidden",
            "401 Unauthorized",
        )
    ):
        return BackendUnavailable(
            f"{shown} refused the credentials given (could not {what} {key!r}): check "
            "storage_options"
        )
    if isinstance(exc, PermissionError) or "Permission denied" in text:
        return BackendUnavailable(f"{shown} is not writable (could not {what} {key!r})")
    if "NoSuchBucket" in text or "ContainerNotFound" in text:
        return BackendUnavailable(f"the bucket or container of {shown} does not exist")
    return BackendUnavailable(f"could not {what} {key!r} at {shown}: {_clean(exc)}")


__all__ = ["Conflict", "Location", "ObjectStore", "open_location", "translate"]

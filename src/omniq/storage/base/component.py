"""What every storage component shares: lazy connect, idempotent close, health, from_config."""

from __future__ import annotations

import asyncio
from abc import ABC
from collections.abc import Awaitable, Generator
from typing import Any, ClassVar, Self

import msgspec

from omniq import _exit
from omniq._lifecycle import AsyncConnectable
from omniq.config import get_settings
from omniq.exceptions import BackendUnavailable
from omniq.queue.builder import validate_queue_name
from omniq.serialization import Serializer
from omniq.storage._breaker import CircuitBreaker, guard_methods


class _Ready:
    """An awaitable that is already done (``await READY`` returns None at once)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return _DONE


def _done() -> Generator[None, None, None]:
    yield from ()


#: one exhausted generator serves every await: resuming it ends at once, returning None
_DONE = _done()
for _ in _DONE:
    pass
READY = _Ready()


class Component(AsyncConnectable, ABC):
    """Connection lifecycle shared by every storage component: lazy connect, idempotent close.

    Every public coroutine method of every subclass goes through the component's circuit
    breaker (``self.breaker``, one per component, that is one per connection; see
    :mod:`omniq.storage._breaker`): put there by ``__init_subclass__``, so a backend gets it
    without writing anything but, where the driver has errors of its own, :meth:`_is_outage`.
    """

    backend_name: ClassVar[str] = "base"
    #: True where the store is on this machine (memory, file, SQLite): dill is accepted there
    #: without a key. Network backends set False.
    is_local: ClassVar[bool] = True

    def __init__(
        self,
        *,
        project_name: str | None = None,
        secret_key: str | bytes | None = None,
        allow_dill: bool | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        settings = get_settings()
        self.project_name = validate_queue_name(project_name or settings.PROJECT_NAME)
        if serializer is None:
            serializer = Serializer(
                secret_key if secret_key is not None else settings.SECRET_KEY,
                allow_dill=allow_dill if allow_dill is not None else settings.ALLOW_DILL,
                local=self.is_local,
            )
        self.serializer = serializer
        self._connected = False
        self._connect_lock: asyncio.Lock | None = None
        self.breaker = CircuitBreaker(self.server_label)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        guard_methods(cls)

    def server_label(self) -> str:
        """The store this component talks to, for messages: never a password. A network backend
        names its server (``Redis at 127.0.0.1:6379/0``)."""
        return self.backend_name

    def _is_outage(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the store is unreachable (refused, reset, timed out, shutting
        down), as opposed to an answer (a missing task, a refused claim): only outages count
        towards the breaker. OSError covers sockets and files; a backend whose driver raises
        errors of its own adds them."""
        return isinstance(exc, OSError | BackendUnavailable)

    def breaker_state(self) -> dict[str, Any]:
        """The circuit breaker's state: ``state`` (closed, open, half_open), ``failures`` in a
        row, ``opened_at`` (epoch seconds, while open), ``server``, ``last_error``, ``trips``."""
        return self.breaker.snapshot()

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        if self._connected:
            return
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if not self._connected:
                # a local store's key file that is damaged or open to other users fails here,
                # naming it, rather than at the first payload (omniq.serialization.signing)
                self.serializer.check_local_key()
                await self._connect()
                self._connected = True
                # closed for the program at exit if it forgets to (omniq._exit)
                _exit.opened(
                    self, f"{type(self).__name__} of project {self.project_name!r}", self.close
                )

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            _exit.closed(self)
            await self._close()

    def _ensure(self) -> Awaitable[None]:
        """``await self._ensure()`` opens the connection on first use. Connected, it returns an
        awaitable that is already done instead of a coroutine: every public storage call awaits
        this, and the breaker's guard around the call costs the coroutine saved here."""
        if not self._connected:
            return self.connect()
        return READY

    async def _connect(self) -> None:
        """Opens connections / creates schema. Default: nothing to do."""

    async def _close(self) -> None:
        """Releases connections. Default: nothing to do."""

    async def health_check(self) -> dict[str, Any]:
        try:
            await self._ensure()
            details = await self._health()
            return {
                "status": "healthy",
                "connected": True,
                "backend": self.backend_name,
                **details,
                "breaker": self.breaker.state.value,
            }
        except Exception as exc:
            return {
                "status": "unhealthy",
                "connected": False,
                "backend": self.backend_name,
                "error": f"{type(exc).__name__}: {exc}",
                "breaker": self.breaker.state.value,
            }

    async def _health(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Any) -> Self:
        data = config.to_dict() if hasattr(config, "to_dict") else msgspec.structs.asdict(config)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    @classmethod
    def from_config_file(cls, path: str) -> Self:
        from omniq.config.loader import load_yaml

        return cls.from_dict(load_yaml(path))

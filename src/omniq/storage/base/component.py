"""What every storage component shares: lazy connect, idempotent close, health, from_config."""

from __future__ import annotations

import asyncio
from abc import ABC
from typing import Any, ClassVar, Self

import msgspec

from omniq import _exit
from omniq._lifecycle import AsyncConnectable
from omniq.config import get_settings
from omniq.queue.builder import validate_queue_name
from omniq.serialization import Serializer


class Component(AsyncConnectable, ABC):
    """Connection lifecycle shared by every storage component: lazy connect, idempotent close."""

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

    async def _ensure(self) -> None:
        if not self._connected:
            await self.connect()

    async def _connect(self) -> None:
        """Opens connections / creates schema. Default: nothing to do."""

    async def _close(self) -> None:
        """Releases connections. Default: nothing to do."""

    async def health_check(self) -> dict[str, Any]:
        try:
            await self._ensure()
            details = await self._health()
            return {"status": "healthy", "connected": True, "backend": self.backend_name, **details}
        except Exception as exc:
            return {
                "status": "unhealthy",
                "connected": False,
                "backend": self.backend_name,
                "error": f"{type(exc).__name__}: {exc}",
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

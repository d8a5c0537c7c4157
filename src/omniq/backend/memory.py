"""Kept so that ``from omniq.backend.memory import MemoryBackend`` works: the bundle lives beside
its backend, in :mod:`omniq.storage.memory.backend`."""

from omniq.storage.memory.backend import AsyncMemoryBackend, MemoryBackend

__all__ = ["AsyncMemoryBackend", "MemoryBackend"]

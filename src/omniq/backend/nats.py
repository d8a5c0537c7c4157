"""Kept so that ``from omniq.backend.nats import NATSBackend`` works: the bundle lives beside
its backend, in :mod:`omniq.storage.nats.backend`."""

from omniq.storage.nats.backend import AsyncNATSBackend, NATSBackend

__all__ = ["AsyncNATSBackend", "NATSBackend"]

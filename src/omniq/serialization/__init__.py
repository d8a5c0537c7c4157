"""Serialization: one envelope format for tasks, results and schedules (ARCHITECTURE section 4)."""

from omniq.serialization.envelope import FLAG_SIGNED, FORMAT_DILL, FORMAT_MSGPACK, Serializer

__all__ = ["FLAG_SIGNED", "FORMAT_DILL", "FORMAT_MSGPACK", "Serializer"]

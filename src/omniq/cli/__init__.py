"""The ``omniq`` command line (typer + rich): ``omniq worker``, ``omniq info``, ``omniq demo``.

``app`` and ``main`` are loaded on first use: ``omniq worker`` starts through
:mod:`omniq.cli.fast` without importing typer (see there), and the modules of this package
that a worker uses must not pull the whole command line in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from omniq.cli import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'omniq.cli' has no attribute {name!r}")

"""The ``omniq`` command line (typer + rich): ``omniq worker``, ``omniq info``, ``omniq demo``."""

from omniq.cli.commands import app, main

__all__ = ["app", "main"]

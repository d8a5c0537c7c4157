"""What a long-running command (``omniq worker``) says on its console, without importing rich
unless the console is a terminal.

rich costs a tenth of a second to import, a quarter of a worker's start to its first task; a
worker under a supervisor (systemd, Kubernetes, a benchmark) writes to a pipe, where rich would
print the same characters without colour anyway. So a message is a :class:`Line` of styled
pieces: :func:`console_for` gives rich's console on a terminal (which renders a ``Line`` through
``__rich__``), and elsewhere a :class:`PlainConsole` that writes the plain text.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.text import Text

#: environment variables with which rich treats any stream as a terminal (or decides itself)
_RICH_DECIDES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


class Printer(Protocol):
    """The part of rich's ``Console`` a command prints with (a ``PlainConsole`` has it too)."""

    def print(self, *objects: Any, soft_wrap: bool | None = None) -> None: ...


class Line:
    """One line of output in pieces, each with an optional rich style (``"bold"``, ``"red"``)."""

    def __init__(self, text: str = "", style: str | None = None) -> None:
        self.parts: list[tuple[str, str | None]] = [(text, style)] if text else []

    def append(self, text: str, style: str | None = None) -> Line:
        self.parts.append((text, style))
        return self

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.parts)

    def __str__(self) -> str:
        return self.plain

    def __rich__(self) -> Text:
        from rich.text import Text

        line = Text()
        for text, style in self.parts:
            line.append(text, style=style)
        return line


class PlainConsole:
    """Prints lines as plain text, one per call, as rich does where there is no terminal."""

    def __init__(self, file: TextIO | None = None) -> None:
        #: None: whatever ``sys.stderr`` is at the time of each print (as rich's ``stderr=True``)
        self.file = file

    def print(self, *objects: Any, soft_wrap: bool | None = None) -> None:
        file = sys.stderr if self.file is None else self.file
        file.write(" ".join(str(obj) for obj in objects) + "\n")
        file.flush()


def console_for(file: TextIO | None = None) -> Printer:
    """The console of a command writing to ``file`` (stderr by default): rich's on a terminal
    (or where the environment asks rich to decide), plain text elsewhere."""
    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    terminal = callable(isatty) and isatty()
    if terminal or any(name in os.environ for name in _RICH_DECIDES):
        from rich.console import Console

        return Console(file=stream) if file is not None else Console(stderr=True)
    return PlainConsole(file)


__all__ = ["Line", "PlainConsole", "Printer", "console_for"]

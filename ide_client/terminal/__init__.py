"""The reference IDE for a person at a terminal: prompt_toolkit for input, rich for output.

`wanted()` says whether to use it: both ends a terminal, no `NO_COLOR`, not a dumb terminal.
Otherwise the plain `ConsoleDisplay` and line prompt are used (pipes, logs, scripts).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

from ide_client.terminal.app import TerminalApp
from ide_client.terminal.approve import TerminalApprovals
from ide_client.terminal.changes import ChangeRecorder
from ide_client.terminal.commands import Command, Invocation, Unknown, parse_line
from ide_client.terminal.view import TerminalDisplay


def wanted(stdin: TextIO, stdout: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """Draw for a person: stdin and stdout are terminals, colour is allowed, TERM is not dumb."""
    if environ.get("NO_COLOR") or environ.get("TERM", "") in ("", "dumb"):
        return False
    return stdin.isatty() and stdout.isatty()


__all__ = [
    "ChangeRecorder",
    "Command",
    "Invocation",
    "TerminalApp",
    "TerminalApprovals",
    "TerminalDisplay",
    "Unknown",
    "parse_line",
    "wanted",
]

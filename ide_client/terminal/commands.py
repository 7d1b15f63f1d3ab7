"""Slash commands: handled by the terminal itself, never sent to the model.

A line is a command when its first word is `/name` (letters only), the rest of the line its
argument (`/undo t3`); `quit` and `exit` alone are `/quit`. A line starting with `//` is sent
to the model with one `/` removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

COMMAND = re.compile(r"^/(?P<name>[A-Za-z]+)(?:\s+(?P<rest>.*))?$", re.DOTALL)
QUIT_WORDS = frozenset({"quit", "exit"})


class Command(Enum):
    """The commands the terminal knows, with the line `/help` shows for each."""

    HELP = "show these commands"
    STATUS = "the session, the connection, the workspace and the tokens used so far"
    DIFF = "the workspace's uncommitted changes (git diff)"
    UNDO = (
        "put back the files the last turn changed (/undo t3: turn t3 and every later one; "
        "--force overwrites your own edits since); the agent is told"
    )
    APPROVAL = "show or set the approval mode: /approval read-only | ask | auto-edit"
    NEW = "start a new session (the agent forgets this conversation)"
    QUIT = "leave (Ctrl-D does the same)"


@dataclass(frozen=True)
class Invocation:
    """A command as typed, with the rest of its line (stripped, '' when none)."""

    command: Command
    argument: str = ""


@dataclass(frozen=True)
class Unknown:
    """A `/word` that is no command."""

    name: str


Parsed = Invocation | Unknown | str


def parse_line(line: str) -> Parsed:
    """A command, an unknown command, or the message to send (a `//` escape undone)."""
    stripped = line.strip()
    if stripped.lower() in QUIT_WORDS:
        return Invocation(Command.QUIT)
    if stripped.startswith("//"):
        return stripped[1:]
    match = COMMAND.match(stripped)
    if match is None:
        return line
    name = match["name"].lower()
    for command in Command:
        if command.name.lower() == name:
            return Invocation(command, (match["rest"] or "").strip())
    return Unknown(name)


def help_lines() -> list[str]:
    """What `/help` prints: each command and what it does, then the keys."""
    width = max(len(command.name) for command in Command) + 2
    lines = [f"/{command.name.lower():<{width}}{command.value}" for command in Command]
    lines += [
        "",
        "Enter sends; Alt-Enter (or Esc then Enter) starts a new line; a paste is one message.",
        "Up/Down walk the history; Ctrl-C cancels a running turn, clears the line at the prompt,",
        "and quits on an empty prompt. Keys typed during a turn are queued as the next message.",
        "Start a message with // to send a text that begins with /.",
    ]
    return lines

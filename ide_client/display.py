"""What the user sees of a turn: the interface the client reports to, and its plain version.

`Display` is what `IdeClient` calls as a turn unfolds; `ConsoleDisplay` writes it as plain
lines (pipes, logs, `NO_COLOR`); `ide_client.terminal` draws it for a person at a terminal.
"""

from __future__ import annotations

from typing import Any, Protocol, TextIO

from wire import Error, SessionState, ToolCall, ToolResult


class Display(Protocol):
    """What the client reports while a turn runs, in arrival order, on the event loop."""

    def agent_text(self, text: str) -> None:
        """A streamed piece of the agent's answer."""
        ...

    def tool_outcome(self, call: ToolCall, result: ToolResult) -> None:
        """A tool call ran in the IDE and this is the result sent back."""
        ...

    def error(self, error: Error) -> None:
        """An `error` event or reply from the gateway."""
        ...

    def turn_ended(self, state: SessionState | None) -> None:
        """The turn came to rest in `state` (`idle`: cancelled; None: refused)."""
        ...

    def note(self, text: str) -> None:
        """A message from the client itself (connection, resume)."""
        ...


class ConsoleDisplay:
    """Writes a turn to a text stream (None: shows nothing).

    `show_diffs` also prints the output of `git.diff` calls under their line, so the user sees
    what the agent changed. A failed tool call is shown once, on its `[tool]` line: the
    gateway's `error` event that repeats it is not printed again.
    """

    def __init__(self, stream: TextIO | None, *, show_diffs: bool = False) -> None:
        self.stream = stream
        self.show_diffs = show_diffs
        self._at_line_start = True
        self._failed_calls: set[str] = set()

    def agent_text(self, text: str) -> None:
        """A streamed piece of the agent's answer, shown at once."""
        self._write(text)

    def tool_outcome(self, call: ToolCall, result: ToolResult) -> None:
        """`[tool] read_file src/auth.js -> ok` or `-> error not_found: ...`."""
        self._line(f"[tool] {describe_call(call.tool, call.arguments)} -> {_outcome(result)}")
        if not result.ok:
            self._failed_calls.add(call.call_id)
        if self.show_diffs and result.ok and call.tool == "git.diff":
            diff = (result.output or {}).get("diff") or "(no changes)\n"
            self._write(diff)

    def error(self, error: Error) -> None:
        """An `error` event, on a line of its own, unless it repeats a tool failure shown."""
        if repeats_tool_failure(error, self._failed_calls):
            return
        fatal = " (fatal)" if error.fatal else ""
        self._line(f"[error{fatal}] {error.source}/{error.code}: {error.message}")

    def turn_ended(self, state: SessionState | None) -> None:
        """Close the turn's output; say so when it did not finish normally."""
        if state is SessionState.DONE:
            self._end_line()
        else:
            self._line(f"[turn ended: {turn_outcome(state)}]")

    def note(self, text: str) -> None:
        """A message from the client itself (connection, resume)."""
        self._line(f"[ide] {text}")

    def _line(self, text: str) -> None:
        self._end_line()
        self._write(text + "\n")

    def _end_line(self) -> None:
        if not self._at_line_start:
            self._write("\n")

    def _write(self, text: str) -> None:
        if text and self.stream is not None:
            self.stream.write(text)
            self.stream.flush()
            self._at_line_start = text.endswith("\n")


def turn_outcome(state: SessionState | None) -> str:
    """How a turn ended, in words: a turn resting in `idle` was cancelled."""
    if state is None:
        return "refused"
    if state is SessionState.IDLE:
        return "cancelled"
    return str(state)


def repeats_tool_failure(error: Error, failed_calls: set[str]) -> bool:
    """The gateway's `error` event for a tool call whose failure the IDE has already shown."""
    return error.source == "ide" and error.call_id is not None and error.call_id in failed_calls


def describe_call(tool: str, arguments: dict[str, Any]) -> str:
    """A tool call as one short phrase: its name and the path it works on."""
    words = [tool]
    for key in ("path", "pattern", "query"):
        value = arguments.get(key)
        if isinstance(value, str):
            words.append(value if key == "path" else repr(value))
    if arguments.get("staged") is True:
        words.append("--staged")
    return " ".join(words)


def _outcome(result: ToolResult) -> str:
    if not result.ok:
        error = result.error
        return f"error {error.code}: {error.message}" if error else "error"
    output = result.output if isinstance(result.output, dict) else {}
    files = output.get("files")
    if isinstance(files, list) and all(isinstance(name, str) for name in files):
        return f"ok ({', '.join(files)})"
    if isinstance(files, list):
        return f"ok ({len(files)} files{', more not listed' if output.get('truncated') else ''})"
    if isinstance(output.get("matches"), list):
        return f"ok ({len(output['matches'])} matches)"
    if "bytes_written" in output:
        return f"ok ({output['bytes_written']} bytes)"
    return "ok"

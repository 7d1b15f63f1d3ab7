"""What a session said, as items a page or a document can show: no JSON strings for people.

Streamed text is gathered into one message; a tool's arguments and results are
split into blocks: a unified diff, a file's text, and whatever is left as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from orchestrator import (
    CancelRequested,
    EmitEvent,
    RejectEvent,
    ToolResultReceived,
    UserMessageReceived,
)
from transcripts.exchanges import Exchange
from wire import AgentDelta, AgentMessage, Error, ToolCall

TEXT_CHARS = 20_000
JSON_CHARS = 2_000
TEXT_KEYS = frozenset({"content", "diff"})
DIFF_STARTS = ("diff --git ", "--- ")


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of a tool's arguments or result: `diff`, file `text`, or the rest as `json`."""

    kind: Literal["diff", "text", "json"]
    label: str
    text: str
    language: str
    omitted: int = 0


@dataclass(frozen=True, slots=True)
class Said:
    """A message of the user, or the agent's text streamed between two other things."""

    role: Literal["user", "agent"]
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """The agent asked the IDE to run a tool."""

    tool: str
    call_id: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ToolAnswered:
    """The IDE's result of a call: blocks when it worked, a code and message when it failed."""

    call_id: str
    tool: str
    ok: bool
    blocks: tuple[Block, ...]
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The agent's turn ended, with why and what it cost."""

    turn_id: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The user stopped the turn."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The core refused an event."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Failed:
    """An error event the IDE was sent."""

    code: str
    source: str
    message: str


Item = Said | ToolCalled | ToolAnswered | TurnFinished | Cancelled | Rejected | Failed


def _clipped(text: str, limit: int) -> tuple[str, int]:
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _language(path: str | None) -> str:
    suffix = PurePosixPath(path).suffix.lstrip(".") if path else ""
    return suffix.lower() or "text"


def _text_block(label: str, text: str, path: str | None) -> Block:
    clipped, omitted = _clipped(text, TEXT_CHARS)
    if label == "diff" or text.startswith(DIFF_STARTS):
        return Block("diff", label, clipped, "diff", omitted)
    return Block("text", label, clipped, _language(path), omitted)


def _json_block(value: Any) -> Block:
    clipped, omitted = _clipped(json.dumps(value, indent=2, ensure_ascii=False), JSON_CHARS)
    return Block("json", "", clipped, "json", omitted)


def blocks(value: Any, path: str | None = None) -> tuple[Block, ...]:
    """Multi-line strings and `content`/`diff` fields as text or diff; the rest as one JSON block."""
    if not isinstance(value, dict):
        return (_json_block(value),)
    texts: list[Block] = []
    rest: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, str) and (key in TEXT_KEYS or "\n" in item):
            texts.append(_text_block(key, item, path))
        else:
            rest[key] = item
    return (_json_block(rest), *texts) if rest or not texts else tuple(texts)


class _Reader:
    """Follows the exchanges; remembers each call's tool and path for its result."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[str, tuple[str, str | None]] = {}

    def pending(self) -> Iterator[Item]:
        if self.text:
            yield Said("agent", "".join(self.text))
            self.text = []

    def exchange(self, exchange: Exchange) -> Iterator[Item]:
        event = exchange.event
        if isinstance(event, UserMessageReceived):
            yield from self.pending()
            yield Said("user", event.content)
        elif isinstance(event, ToolResultReceived):
            yield from self.pending()
            tool, path = self.calls.get(event.call_id, ("", None))
            shown = blocks(event.output, path) if event.ok else ()
            yield ToolAnswered(
                event.call_id, tool, event.ok, shown, event.error_code, event.error_message
            )
        elif isinstance(event, CancelRequested):
            yield from self.pending()
            yield Cancelled()
        for command in exchange.outputs:
            if isinstance(command, RejectEvent):
                yield from self.pending()
                yield Rejected(command.code, command.message)
            elif isinstance(command, EmitEvent):
                yield from self.emitted(command.event)

    def emitted(self, event: object) -> Iterator[Item]:
        if isinstance(event, AgentDelta):
            self.text.append(event.text)
            return
        if isinstance(event, ToolCall):
            yield from self.pending()
            path = event.arguments.get("path")
            self.calls[event.call_id] = (event.tool, path if isinstance(path, str) else None)
            yield ToolCalled(
                event.tool, event.call_id, blocks(event.arguments, self.calls[event.call_id][1])
            )
        elif isinstance(event, AgentMessage):
            yield from self.pending()
            usage = event.usage
            yield TurnFinished(
                event.turn_id, event.finish_reason, usage.prompt_tokens, usage.completion_tokens
            )
        elif isinstance(event, Error):
            yield from self.pending()
            yield Failed(event.code, str(event.source), event.message)


def conversation(session: Iterable[Exchange]) -> Iterator[Item]:
    """The session's items in the order they happened."""
    reader = _Reader()
    for exchange in session:
        yield from reader.exchange(exchange)
    yield from reader.pending()

"""Transcripts for people and tools: a row listing, JSON lines, and a Markdown conversation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from orchestrator.codec import decode_command, decode_config, decode_event
from orchestrator.commands import Command, EmitEvent, RejectEvent
from orchestrator.events import CancelRequested, Event, ToolResultReceived, UserMessageReceived
from transcripts.store import INPUT, SessionRecord, TranscriptStore
from wire import AgentDelta, AgentMessage, Error, ToolCall

SHOW_WIDTH = 160
RESULT_CHARS = 2_000


def timestamp(seconds: float) -> str:
    """A recorded time as ISO 8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_line(session: SessionRecord) -> str:
    """One line of `transcripts list`."""
    redacted = f"  {session.redactions} redacted" if session.redactions else ""
    return (
        f"{session.session_id}  {timestamp(session.created_at)}  {session.model}  "
        f"{session.inputs} in / {session.outputs} out{redacted}"
    )


def show_lines(store: TranscriptStore, session: SessionRecord) -> Iterator[str]:
    """The session's header, then one line per row: seq, kind, time and the payload, clipped."""
    yield f"session     {session.session_id}"
    yield f"created     {timestamp(session.created_at)}"
    yield f"model       {session.model}"
    yield f"rows        {session.inputs} inputs, {session.outputs} outputs"
    yield f"redactions  {session.redactions}"
    yield f"config      {session.config}"
    yield ""
    for row in store.events(session.session_id):
        payload = row.payload
        if len(payload) > SHOW_WIDTH:
            payload = f"{payload[:SHOW_WIDTH]}... ({len(row.payload)} chars)"
        yield f"{row.seq:>6}  {row.kind:<6}  {timestamp(row.recorded_at)}  {payload}"


def jsonl_lines(store: TranscriptStore, session: SessionRecord) -> Iterator[str]:
    """A `session` header object, then every row with its payload embedded verbatim."""
    header = {
        "type": "session",
        "session_id": session.session_id,
        "created_at": session.created_at,
        "model": session.model,
        "codec_version": session.codec_version,
        "redactions": session.redactions,
        "config": json.loads(session.config),
        "meta": session.meta,
    }
    yield json.dumps(header, separators=(",", ":"))
    for row in store.events(session.session_id):
        yield (
            f'{{"seq":{row.seq},"kind":"{row.kind}","recorded_at":{row.recorded_at!r},'
            f'"payload":{row.payload}}}'
        )


def _fenced(text: str, language: str = "") -> str:
    """`text` in a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _clipped_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) <= RESULT_CHARS:
        return text
    return f"{text[:RESULT_CHARS]}\n... ({len(text) - RESULT_CHARS} more characters)"


class _Conversation:
    """Turns decoded rows into Markdown blocks; streamed text is gathered until something else."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def pending_text(self) -> Iterator[str]:
        if self.text:
            yield "## Agent\n\n" + "".join(self.text)
            self.text = []

    def input(self, event: Event) -> Iterator[str]:
        if isinstance(event, UserMessageReceived):
            yield from self.pending_text()
            yield "## User\n\n" + event.content
        elif isinstance(event, ToolResultReceived):
            yield from self.pending_text()
            if event.ok:
                body = _fenced(_clipped_json(event.output), "json")
                yield f"**Tool result** `{event.call_id}` (ok)\n\n{body}"
            else:
                yield (
                    f"**Tool result** `{event.call_id}` (failed: `{event.error_code}`) "
                    f"{event.error_message or ''}"
                )
        elif isinstance(event, CancelRequested):
            yield from self.pending_text()
            yield "*The user cancelled the turn.*"

    def output(self, command: Command) -> Iterator[str]:
        if isinstance(command, RejectEvent):
            yield from self.pending_text()
            yield f"*Rejected (`{command.code}`): {command.message}*"
            return
        if not isinstance(command, EmitEvent):
            return
        event = command.event
        if isinstance(event, AgentDelta):
            self.text.append(event.text)
            return
        if isinstance(event, ToolCall):
            yield from self.pending_text()
            arguments = _fenced(json.dumps(event.arguments, indent=2, ensure_ascii=False), "json")
            yield f"**Tool call** `{event.tool}` `{event.call_id}`\n\n{arguments}"
        elif isinstance(event, AgentMessage):
            yield from self.pending_text()
            usage = event.usage
            yield (
                f"*Turn {event.turn_id} finished ({event.finish_reason}): "
                f"{usage.prompt_tokens} prompt and {usage.completion_tokens} completion tokens.*"
            )
        elif isinstance(event, Error):
            yield from self.pending_text()
            yield f"> **Error** `{event.code}` ({event.source}): {event.message}"


def markdown_lines(store: TranscriptStore, session: SessionRecord) -> Iterator[str]:
    """The conversation as Markdown: messages, tool calls and results, errors."""
    config = decode_config(session.config)
    yield f"# Session `{session.session_id}`\n"
    yield f"- recorded: {timestamp(session.created_at)}"
    yield f"- model: `{session.model}`"
    yield f"- rows: {session.inputs} inputs, {session.outputs} outputs"
    if session.redactions:
        yield f"- redactions: {session.redactions} secrets replaced by `[REDACTED]`"
    yield f"- tools offered: {', '.join(f'`{name}`' for name in config.tools) or 'none'}"
    yield f"- limits: {config.max_steps} model calls a turn, tool timeout {config.tool_timeout_s:g} s\n"
    conversation = _Conversation()
    for row in store.events(session.session_id):
        if row.kind == INPUT:
            blocks = conversation.input(decode_event(row.payload))
        else:
            blocks = conversation.output(decode_command(row.payload))
        for block in blocks:
            yield block + "\n"
    for block in conversation.pending_text():
        yield block + "\n"

"""Transcripts for people and tools: a session listing, a row listing, JSON lines, Markdown."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from orchestrator import decode_command, decode_config, decode_event
from transcripts.conversation import (
    Block,
    Cancelled,
    Failed,
    Item,
    Rejected,
    Said,
    ToolAnswered,
    ToolCalled,
    TurnFinished,
    conversation,
)
from transcripts.exchanges import exchanges
from transcripts.rows import describe_command, describe_event
from transcripts.store import INPUT, Overview, SessionRecord, TranscriptStore

SHOW_WIDTH = 160


def timestamp(seconds: float) -> str:
    """A recorded time as ISO 8601 UTC with milliseconds."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


LIST_HEADER = ("SESSION", "STARTED", "DURATION", "MODEL", "TURNS", "ROWS IN/OUT", "FIRST MESSAGE")
FIRST_MESSAGE_CHARS = 60
UNKNOWN = "-"


def duration(seconds: float) -> str:
    """A span of time for people: `0.84 s`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def one_line(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def session_rows(store: TranscriptStore) -> list[tuple[str, ...]]:
    """`transcripts list`: a header, then one row per session, oldest first."""
    overviews = store.overviews()
    rows: list[tuple[str, ...]] = [LIST_HEADER]
    for session in store.sessions():
        overview = overviews.get(session.session_id, Overview(0, "", session.created_at))
        redacted = f" ({session.redactions} redacted)" if session.redactions else ""
        rows.append(
            (
                session.session_id,
                timestamp(session.created_at)[:19] + "Z",
                duration(overview.last_recorded_at - session.created_at),
                session.model or UNKNOWN,
                str(overview.turns),
                f"{session.inputs}/{session.outputs}{redacted}",
                one_line(overview.first_message, FIRST_MESSAGE_CHARS),
            )
        )
    return rows


def aligned(rows: list[tuple[str, ...]], right: frozenset[int]) -> Iterator[str]:
    """Rows as columns padded to their widest cell; columns in `right` right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        yield "  ".join(cells).rstrip()


def list_lines(rows: list[tuple[str, ...]]) -> Iterator[str]:
    """`session_rows` aligned: durations and counts to the right."""
    return aligned(rows, frozenset({2, 4, 5}))


def _config_words(config: str) -> str:
    """The core config on one line; long texts (the system prompt) by their length."""
    return ", ".join(
        f"{key} ({len(value)} characters)" if isinstance(value, str) else f"{key} {value}"
        for key, value in json.loads(config).items()
    )


def show_lines(store: TranscriptStore, session: SessionRecord, raw: bool = False) -> Iterator[str]:
    """The session's header, then one line per row: seq, kind, time since the start, and what
    the row holds in words (`raw`: its stored JSON, clipped)."""
    yield f"session     {session.session_id}"
    yield f"created     {timestamp(session.created_at)}"
    yield f"model       {session.model or UNKNOWN}"
    yield f"rows        {session.inputs} inputs, {session.outputs} outputs"
    yield f"redactions  {session.redactions}"
    yield f"config      {session.config if raw else _config_words(session.config)}"
    yield ""
    yield f"{'SEQ':>6}  {'KIND':<6}  {'TIME':>9}  {'PAYLOAD' if raw else 'WHAT'}"
    for row in store.events(session.session_id):
        if raw:
            what = row.payload
            if len(what) > SHOW_WIDTH:
                what = f"{what[:SHOW_WIDTH]}... ({len(row.payload)} chars)"
        elif row.kind == INPUT:
            what = describe_event(decode_event(row.payload))
        else:
            what = describe_command(decode_command(row.payload))
        since = row.recorded_at - session.created_at
        yield f"{row.seq:>6}  {row.kind:<6}  {since:+8.3f}s  {what}"


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
    return f"{fence}{language}\n{text.removesuffix(chr(10))}\n{fence}"


def _block(block: Block) -> str:
    label = f"`{block.label}`:\n\n" if block.label else ""
    cut = f"\n\n*... {block.omitted} more characters*" if block.omitted else ""
    return label + _fenced(block.text, block.language) + cut


def _blocks(blocks: tuple[Block, ...]) -> str:
    return "".join("\n\n" + _block(block) for block in blocks)


def markdown_item(item: Item) -> str:
    """One conversation item as a Markdown block."""
    match item:
        case Said(role="user", text=text):
            return "## User\n\n" + text
        case Said(text=text):
            return "## Agent\n\n" + text
        case ToolCalled(tool=tool, call_id=call_id, blocks=shown):
            return f"**Tool call** `{tool}` `{call_id}`" + _blocks(shown)
        case ToolAnswered(ok=True, call_id=call_id, blocks=shown):
            return f"**Tool result** `{call_id}` (ok)" + _blocks(shown)
        case ToolAnswered(call_id=call_id, error_code=code, error_message=message):
            return f"**Tool result** `{call_id}` (failed: `{code}`) {message or ''}"
        case TurnFinished():
            return (
                f"*Turn {item.turn_id} finished ({item.finish_reason}): {item.prompt_tokens} "
                f"prompt and {item.completion_tokens} completion tokens.*"
            )
        case Cancelled():
            return "*The user cancelled the turn.*"
        case Rejected(code=code, message=message):
            return f"*Rejected (`{code}`): {message}*"
        case Failed(code=code, source=source, message=message):
            return f"> **Error** `{code}` ({source}): {message}"
    raise AssertionError(f"unknown conversation item {item!r}")


def markdown_lines(store: TranscriptStore, session: SessionRecord) -> Iterator[str]:
    """The conversation as Markdown: messages, tool calls and results (diffs as diffs), errors."""
    config = decode_config(session.config)
    yield f"# Session `{session.session_id}`\n"
    yield f"- recorded: {timestamp(session.created_at)}"
    yield f"- model: `{session.model or UNKNOWN}`"
    yield f"- rows: {session.inputs} inputs, {session.outputs} outputs"
    if session.redactions:
        yield f"- redactions: {session.redactions} secrets replaced by `[REDACTED]`"
    yield f"- tools offered: {', '.join(f'`{name}`' for name in config.tools) or 'none'}"
    yield f"- limits: {config.max_steps} model calls a turn, tool timeout {config.tool_timeout_s:g} s\n"
    for item in conversation(exchanges(store.events(session.session_id))):
        yield markdown_item(item) + "\n"

"""Reads one recorded session's model requests, and what each one's stream fed the session.

A transcript database (docs/transcripts.md) holds, per session, every
`start_llm_request` output (the exact messages and tools sent) and the `llm_*`
inputs tagged with its `request_id` (text deltas, completed tool calls, the end
of the stream or its failure). This module reads them as plain JSON, read-only,
without the orchestrator's codec: the proxy never imports the orchestrator, and
the payload format is a documented contract.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_proxy.errors import ReplaySourceError

# The payload format (docs/transcripts.md, "codec version") this reader understands.
TRANSCRIPT_CODEC_VERSION = 1
REQUEST_TYPE = "start_llm_request"
STREAM_TYPES = frozenset({"llm_delta", "llm_tool_calls", "llm_end", "llm_failed"})
ENDING_TYPES = frozenset({"llm_end", "llm_failed"})


@dataclass(frozen=True, slots=True)
class RecordedExchange:
    """One model request of the session and the stream events it fed the session.

    `events` stop at the first `llm_end` or `llm_failed`: anything later for the
    same request was stale and rejected. `ended` is False when the recording has no
    end for it (the turn was cancelled mid-stream, or the recording stops there).
    """

    request_id: str
    messages: list[Any]
    tools: list[Any]
    events: list[dict[str, Any]]

    @property
    def ended(self) -> bool:
        """The recorded stream has its end (or its failure)."""
        return bool(self.events) and self.events[-1]["type"] in ENDING_TYPES


@dataclass(frozen=True, slots=True)
class RecordedSession:
    """The model side of one recorded session: its model name and requests, in order."""

    session_id: str
    model: str
    exchanges: tuple[RecordedExchange, ...]
    context_window: int = 0
    """The window the session was sized by (0: none recorded); a re-run must use the same."""


def read_recorded_session(path: Path, session_id: str) -> RecordedSession:
    """Load a session's exchanges; raises ReplaySourceError naming the file and the problem."""
    if not path.is_file():
        raise ReplaySourceError(f"no transcript database at {path}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise ReplaySourceError(f"cannot open transcript database {path}: {exc}") from None
    try:
        model, window = _session_model(connection, path, session_id)
        rows = connection.execute(
            "SELECT seq, kind, payload FROM events WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise ReplaySourceError(f"cannot read transcript database {path}: {exc}") from None
    finally:
        connection.close()
    return RecordedSession(session_id, model, _exchanges(path, rows), window)


def _session_model(connection: sqlite3.Connection, path: Path, session_id: str) -> tuple[str, int]:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    if not {"sessions", "events"} <= tables:
        raise ReplaySourceError(f"{path} is not a transcript database")
    row = connection.execute(
        "SELECT model, codec_version, config FROM sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise ReplaySourceError(
            f"no session {session_id!r} in {path} (`agent-service transcripts list --db {path}` "
            "shows the recorded ones)"
        )
    model, version, config = row
    if version != TRANSCRIPT_CODEC_VERSION:
        raise ReplaySourceError(
            f"session {session_id!r} in {path} was written with codec version {version}; "
            f"this proxy reads version {TRANSCRIPT_CODEC_VERSION}"
        )
    try:
        window = json.loads(config or "{}").get("context_window") or 0
    except (ValueError, AttributeError):
        window = 0
    return str(model), int(window)


def _exchanges(path: Path, rows: list[tuple[int, str, str]]) -> tuple[RecordedExchange, ...]:
    exchanges: dict[str, RecordedExchange] = {}
    for seq, kind, text in rows:
        try:
            payload = json.loads(text)
            kind_of = payload.get("type")
            if kind == "output" and kind_of == REQUEST_TYPE:
                request_id = payload["request_id"]
                exchanges[request_id] = RecordedExchange(
                    request_id, list(payload["messages"]), list(payload["tools"]), []
                )
            elif kind == "input" and kind_of in STREAM_TYPES:
                exchange = exchanges.get(payload["request_id"])
                if exchange is not None and not exchange.ended:
                    exchange.events.append(payload)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ReplaySourceError(f"{path}: row seq {seq} is not a payload it can read") from None
    return tuple(exchanges.values())

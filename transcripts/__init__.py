"""Session transcripts: a SQLite store of every session's inputs and outputs, and exact replay."""

from transcripts.errors import (
    BadRedactionPattern,
    CorruptTranscript,
    RecordingError,
    SessionNotFound,
    StoreError,
    TranscriptError,
)
from transcripts.export import jsonl_lines, list_lines, markdown_lines, session_rows, show_lines
from transcripts.recorder import TranscriptRecorder
from transcripts.redaction import DEFAULT_PATTERNS, REDACTED, Redactor, starts_token
from transcripts.replay import Divergence, Verdict, replay_steps, verify_session
from transcripts.restore import sessions_to_restore
from transcripts.store import INPUT, OUTPUT, EventRecord, SessionRecord, TranscriptStore
from transcripts.view import view_html

__all__ = [
    "DEFAULT_PATTERNS",
    "INPUT",
    "OUTPUT",
    "REDACTED",
    "BadRedactionPattern",
    "CorruptTranscript",
    "Divergence",
    "EventRecord",
    "RecordingError",
    "Redactor",
    "SessionNotFound",
    "SessionRecord",
    "StoreError",
    "TranscriptError",
    "TranscriptRecorder",
    "TranscriptStore",
    "Verdict",
    "jsonl_lines",
    "list_lines",
    "markdown_lines",
    "replay_steps",
    "session_rows",
    "sessions_to_restore",
    "show_lines",
    "starts_token",
    "verify_session",
    "view_html",
]

"""Session transcripts: a SQLite store of every session's inputs and outputs, and exact replay."""

from transcripts.errors import (
    BadRedactionPattern,
    CorruptTranscript,
    RecordingError,
    SessionNotFound,
    StoreError,
    TranscriptError,
)
from transcripts.recorder import TranscriptRecorder
from transcripts.redaction import DEFAULT_PATTERNS, REDACTED, Redactor, starts_token
from transcripts.replay import Divergence, Verdict, replay_steps, verify_session
from transcripts.store import INPUT, OUTPUT, EventRecord, SessionRecord, TranscriptStore

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
    "replay_steps",
    "starts_token",
    "verify_session",
]

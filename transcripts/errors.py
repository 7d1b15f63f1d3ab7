"""Errors of the transcript store, each with a `code` a caller can act on."""

from __future__ import annotations

from wire import AgentServiceError


class TranscriptError(AgentServiceError):
    """Root of every transcript error."""

    code = "transcript_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class StoreError(TranscriptError):
    """The database file cannot be opened, read or written."""

    code = "store_unavailable"


class SessionNotFound(TranscriptError):
    """No transcript has this session id."""

    code = "session_not_found"


class RecordingError(TranscriptError):
    """The recorder was called out of order (a session started twice, or never)."""

    code = "recording_misuse"


class CorruptTranscript(TranscriptError):
    """A stored row does not decode: the data was damaged or written by a newer version."""

    code = "corrupt_transcript"


class BadRedactionPattern(TranscriptError):
    """A redaction pattern is not a usable regular expression."""

    code = "bad_redaction_pattern"

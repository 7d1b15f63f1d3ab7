"""Error codes a client can act on: one closed vocabulary for every `error` event."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every code the services put in an `error` event (IDE tool codes pass through as-is)."""

    # protocol: a bad frame or a frame the session cannot take now
    INVALID_JSON = "invalid_json"
    INVALID_FRAME = "invalid_frame"
    TOO_LARGE = "too_large"
    HELLO_REQUIRED = "hello_required"
    UNKNOWN_SESSION = "unknown_session"
    RESUME_GAP = "resume_gap"
    BUSY = "busy"
    NOTHING_TO_CANCEL = "nothing_to_cancel"
    UNKNOWN_CALL_ID = "unknown_call_id"
    DUPLICATE_RESULT = "duplicate_result"
    LATE_RESULT = "late_result"
    SESSION_LIMIT = "session_limit"
    SESSION_TAKEN_OVER = "session_taken_over"
    ORCHESTRATOR_UNAVAILABLE = "orchestrator_unavailable"
    # agent: the orchestrator ended or repaired a step
    MAX_STEPS = "max_steps"
    STUCK = "stuck"
    INVALID_TOOL_CALL = "invalid_tool_call"
    ILLEGAL_EVENT = "illegal_event"
    INTERRUPTED = "interrupted"
    INTERNAL = "internal"
    COMPACTION_FAILED = "compaction_failed"
    # ide: a tool did not run as asked
    TIMEOUT = "timeout"
    TOOL_FAILED = "tool_failed"
    # llm: the model or its endpoint failed
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_TIMEOUT = "llm_timeout"
    LLM_RATE_LIMITED = "llm_rate_limited"
    LLM_BAD_REQUEST = "llm_bad_request"
    LLM_AUTH = "llm_auth"
    LLM_UPSTREAM_ERROR = "llm_upstream_error"
    LLM_TRUNCATED = "llm_truncated"
    LLM_BAD_RESPONSE = "llm_bad_response"
    LLM_CONTEXT_EXCEEDED = "llm_context_exceeded"

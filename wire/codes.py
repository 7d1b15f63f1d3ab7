"""Error codes a client can act on: one closed vocabulary for every `error` event."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every code the services themselves put in an `error` event (IDE codes: `ToolErrorCode`)."""

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
    APPROVAL_PENDING = "approval_pending"
    READ_ONLY = "read_only"
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


class ToolErrorCode(StrEnum):
    """The codes an IDE may put in `tool_result.error.code`; the services pass them on in the
    `error` event (source `ide`). Any other code arrives as `tool_failed`, naming it.

    `declined`: the user refused the call; `unsupported_by_editor` / `editor_failed`: an
    editor behind a bridge (ACP) cannot run it, or failed to; `rejected_by_user`: the user
    rejected a write call it was asked to approve (the services answer the model with it)."""

    INVALID_ARGUMENTS = "invalid_arguments"
    UNKNOWN_TOOL = "unknown_tool"
    NOT_FOUND = "not_found"
    NOT_A_FILE = "not_a_file"
    NOT_TEXT = "not_text"
    OUTSIDE_WORKSPACE = "outside_workspace"
    PROTECTED_PATH = "protected_path"
    TOO_LARGE = "too_large"
    PATCH_FAILED = "patch_failed"
    NOT_A_GIT_REPO = "not_a_git_repo"
    TIMEOUT = "timeout"
    TOOL_FAILED = "tool_failed"
    DECLINED = "declined"
    UNSUPPORTED_BY_EDITOR = "unsupported_by_editor"
    EDITOR_FAILED = "editor_failed"
    REJECTED_BY_USER = "rejected_by_user"


SENT_CODES: tuple[str, ...] = tuple(
    dict.fromkeys([*(code.value for code in ErrorCode), *(code.value for code in ToolErrorCode)])
)
"""Every `error.code` value the services send, each once: the schema's `ErrorCode` enum."""

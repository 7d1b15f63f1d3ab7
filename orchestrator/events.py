"""Events into the session core: everything that can happen to a session, as frozen data.

Each event names the `transitions` trigger it fires. Ids and texts come in with
the events; the core adds nothing random or time-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from wire import LlmFailureKind


@dataclass(frozen=True, slots=True)
class UserMessageReceived:
    """The user typed a message: starts a turn."""

    trigger: ClassVar[str] = "user_message"
    content: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class LlmTextDelta:
    """A piece of the model's streamed answer."""

    trigger: ClassVar[str] = "llm_delta"
    request_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    """One complete tool call of the model, as accumulated from its stream."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class LlmToolCallsCompleted:
    """All tool calls of one model response, in the model's order."""

    trigger: ClassVar[str] = "llm_tool_calls"
    request_id: str
    calls: tuple[ModelToolCall, ...]


@dataclass(frozen=True, slots=True)
class LlmStreamEnded:
    """The model's response finished cleanly (`[DONE]` seen)."""

    trigger: ClassVar[str] = "llm_end"
    request_id: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class LlmFailed:
    """The model request failed before or during streaming.

    `code` and `message` are what the IDE is told; `kind`, `status` and `detail` say, as
    data, what the endpoint did (its HTTP status, its own words), so a replay can do it again.
    """

    trigger: ClassVar[str] = "llm_failed"
    request_id: str
    code: str
    message: str
    kind: str = LlmFailureKind.LOCAL
    status: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResultReceived:
    """The IDE answered a tool call."""

    trigger: ClassVar[str] = "tool_result"
    call_id: str
    ok: bool
    output: Any = None
    error_code: str | None = None
    error_message: str | None = None
    message_id: str | None = None
    error_details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolTimedOut:
    """A tool call's timer, started by `StartToolTimer`, ran out."""

    trigger: ClassVar[str] = "tool_timeout"
    call_id: str


@dataclass(frozen=True, slots=True)
class TurnDeadlineReached:
    """The turn's wall-clock deadline, started by `StartTurnTimer`, passed."""

    trigger: ClassVar[str] = "turn_deadline"
    turn_id: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """The user stopped the running turn."""

    trigger: ClassVar[str] = "cancel"
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalModeSet:
    """The user changed the session's approval mode (`set_approval`)."""

    trigger: ClassVar[str] = "set_approval"
    mode: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalAnswered:
    """The user decided on a write call that waits for approval (`approval`)."""

    trigger: ClassVar[str] = "approval"
    call_id: str
    decision: str
    message: str | None = None
    end_turn: bool = False
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class FilesRevertedByUser:
    """The IDE put these files back as they were before a turn (`files_reverted`)."""

    trigger: ClassVar[str] = "files_reverted"
    turn_id: str
    paths: tuple[str, ...]
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class SeqFloorRaised:
    """After a crash: the process that died may have sent events numbered up to `seq`, so the
    session's next event is `seq + 1` and no number is given twice. Not a trigger of the
    state machine: it changes only the numbering."""

    trigger: ClassVar[str] = "seq_floor"
    seq: int


Event = (
    UserMessageReceived
    | LlmTextDelta
    | LlmToolCallsCompleted
    | LlmStreamEnded
    | LlmFailed
    | ToolResultReceived
    | ToolTimedOut
    | TurnDeadlineReached
    | CancelRequested
    | ApprovalModeSet
    | ApprovalAnswered
    | FilesRevertedByUser
    | SeqFloorRaised
)

# The state machine's triggers; `SeqFloorRaised` is an Event but no trigger.
EVENT_TYPES: tuple[type[Event], ...] = (
    UserMessageReceived,
    LlmTextDelta,
    LlmToolCallsCompleted,
    LlmStreamEnded,
    LlmFailed,
    ToolResultReceived,
    ToolTimedOut,
    TurnDeadlineReached,
    CancelRequested,
    ApprovalModeSet,
    ApprovalAnswered,
    FilesRevertedByUser,
)

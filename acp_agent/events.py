"""The service's numbered events as ACP `session/update`s, for a live turn and for a replay.

One mapper per session sees every event once, in seq order. It keeps what a prompt's answer
needs (how the turn ended, its usage) and which tool calls are still open: a call is settled
once, by the bridge's tool runner when it ran the call, else here from the events (an IDE error,
a rejection, the next step starting, the turn ending). A call that waited for approval is shown
from its `approval_request` on; its `tool_call` then only moves it along.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from acp import (
    start_tool_call,
    update_agent_message_text,
    update_tool_call,
    update_user_message_text,
)
from acp.helpers import update_current_mode
from acp.schema import StopReason, ToolCallStatus

from acp_agent.link import SessionUpdate
from acp_agent.presentation import message, tool_kind, tool_locations, tool_preview, tool_title
from wire import (
    AgentDelta,
    AgentMessage,
    ApprovalDecision,
    ApprovalModeChanged,
    ApprovalRequest,
    Decision,
    Error,
    ErrorCode,
    ErrorSource,
    ServerMessage,
    SessionState,
    StateChanged,
    ToolCall,
    Usage,
)

_AT_REST = frozenset({SessionState.IDLE, SessionState.DONE, SessionState.ERROR})
_FINISH_REASONS: dict[str, StopReason] = {"length": "max_tokens", "content_filter": "refusal"}


@dataclass
class TurnOutcome:
    """How the latest turn ended, as far as its events tell."""

    state: SessionState | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    usage: Usage | None = None


@dataclass
class EventMapper:
    """Maps one session's events; `prompts` holds the user's text by turn number, when known."""

    root: Path
    prompts: dict[int, str] = field(default_factory=dict)
    replaying: bool = False
    turns: int = 0
    outcome: TurnOutcome = field(default_factory=TurnOutcome)
    next_prompt: str | None = None
    _open_calls: dict[str, str] = field(default_factory=dict)

    def updates(self, event: ServerMessage) -> list[SessionUpdate]:
        """The updates one numbered event becomes (often one, sometimes none)."""
        if isinstance(event, AgentDelta):
            return [update_agent_message_text(event.text)] if event.text else []
        if isinstance(event, ApprovalRequest):
            return [self._started(event)]
        if isinstance(event, ToolCall):
            if event.call_id in self._open_calls:
                return []
            return [self._started(event)]
        if isinstance(event, ApprovalDecision) and event.decision == Decision.REJECT:
            if not self.settle(event.call_id):
                return []
            reason = f"rejected: {event.message}" if event.message else "rejected"
            return [update_tool_call(event.call_id, status="failed", content=message(reason))]
        if isinstance(event, ApprovalModeChanged) and self.replaying:
            return [update_current_mode(event.mode)]
        if isinstance(event, StateChanged):
            return self._state(event)
        if isinstance(event, AgentMessage):
            self.outcome.finish_reason = event.finish_reason
            self.outcome.usage = event.usage
            return []
        if isinstance(event, Error) and event.seq is not None:
            return self._error(event)
        return []

    def settle(self, call_id: str) -> bool:
        """Claim the final status of a call: True the first time, False once it is settled."""
        return self._open_calls.pop(call_id, None) is not None

    def stop_reason(self, cancel_requested: bool) -> StopReason:
        """The `session/prompt` stop reason of the turn that just ended."""
        outcome = self.outcome
        if cancel_requested or outcome.state is SessionState.IDLE:
            return "cancelled"
        if outcome.state is SessionState.ERROR and outcome.error_code == ErrorCode.MAX_STEPS:
            return "max_turn_requests"
        if outcome.state is SessionState.DONE and outcome.finish_reason:
            return _FINISH_REASONS.get(outcome.finish_reason, "end_turn")
        return "end_turn"

    # ---- one kind of event each ---------------------------------------------------------

    def _started(self, call: ToolCall | ApprovalRequest) -> SessionUpdate:
        self._open_calls[call.call_id] = call.tool
        return start_tool_call(
            call.call_id,
            tool_title(call.tool, call.arguments),
            kind=tool_kind(call.tool),
            status="pending",
            content=tool_preview(call.tool, call.arguments) or None,
            locations=tool_locations(call.tool, call.arguments, self.root) or None,
            raw_input=call.arguments,
        )

    def _state(self, event: StateChanged) -> list[SessionUpdate]:
        if event.state is SessionState.STREAMING and event.previous in _AT_REST:
            return self._turn_started()
        if event.state is SessionState.STREAMING:
            return self._close_open("completed", None)
        if event.state in _AT_REST:
            self.outcome.state = event.state
            reason = "cancelled" if event.state is SessionState.IDLE else "the turn ended"
            return self._close_open("failed", reason)
        return []

    def _turn_started(self) -> list[SessionUpdate]:
        self.turns += 1
        self.outcome = TurnOutcome()
        if not self.replaying:
            if self.next_prompt is not None:
                self.prompts[self.turns] = self.next_prompt
                self.next_prompt = None
            return []
        text = self.prompts.get(self.turns)
        return [update_user_message_text(text)] if text else []

    def _error(self, error: Error) -> list[SessionUpdate]:
        self.outcome.error_code = error.code
        if error.call_id is not None and error.source is ErrorSource.LLM:
            return [
                start_tool_call(
                    error.call_id,
                    "Invalid tool call",
                    kind="other",
                    status="failed",
                    content=message(error.message),
                )
            ]
        if error.call_id is not None:
            if not self.settle(error.call_id):
                return []
            return [
                update_tool_call(
                    error.call_id,
                    status="failed",
                    content=message(f"{error.code}: {error.message}"),
                )
            ]
        return [update_agent_message_text(f"\n\n[{error.source}/{error.code}] {error.message}\n")]

    def _close_open(self, status: ToolCallStatus, reason: str | None) -> list[SessionUpdate]:
        calls, self._open_calls = list(self._open_calls), {}
        return [
            update_tool_call(call_id, status=status, content=message(reason) if reason else None)
            for call_id in calls
        ]

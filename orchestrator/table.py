"""The session state machine's transition table: every (state, event) pair, declared once.

Rows are `transitions` transition dicts, read top to bottom: for one trigger and
source state, the first row whose guards pass is taken. `dest: None` keeps the
state (an internal transition). Every row that starts with `reject_` changes
nothing but emits a `RejectEvent`. `tests/test_core_table.py` proves that every
pair of state and event is decided here, and `docs/state-machine.md` is
generated from this list.
"""

from __future__ import annotations

from typing import Any

from wire import SessionState

IDLE = SessionState.IDLE
STREAMING = SessionState.STREAMING
AWAITING_TOOL = SessionState.AWAITING_TOOL
ERROR = SessionState.ERROR
DONE = SessionState.DONE

STATES: tuple[SessionState, ...] = (IDLE, STREAMING, AWAITING_TOOL, ERROR, DONE)
AT_REST: list[SessionState] = [IDLE, ERROR, DONE]
IN_TURN: list[SessionState] = [STREAMING, AWAITING_TOOL]
NOT_STREAMING: list[SessionState] = [IDLE, AWAITING_TOOL, ERROR, DONE]
NOT_AWAITING: list[SessionState] = [IDLE, STREAMING, ERROR, DONE]
ALL: list[SessionState] = list(STATES)


def _row(
    trigger: str, source: Any, dest: SessionState | None, **guards_and_actions: Any
) -> dict[str, Any]:
    return {"trigger": trigger, "source": source, "dest": dest, **guards_and_actions}


TRANSITIONS: list[dict[str, Any]] = [
    # user_message: starts a turn when at rest, is refused during one
    _row(
        "user_message", AT_REST, None, conditions="is_message_too_large", after="reject_too_large"
    ),
    _row("user_message", AT_REST, STREAMING, before="begin_turn", after="request_llm"),
    # ... and during one is queued for the next step when the IDE steers, else refused
    _row("user_message", IN_TURN, None, unless="uses_steering", after="reject_busy"),
    _row(
        "user_message", IN_TURN, None, conditions="is_message_too_large", after="reject_too_large"
    ),
    _row("user_message", IN_TURN, None, after="queue_message"),
    # llm_delta: streamed text of the current request
    _row("llm_delta", STREAMING, None, unless="is_current_request", after="reject_stale"),
    _row("llm_delta", STREAMING, None, conditions="is_compaction", after="collect_summary"),
    _row(
        "llm_delta",
        STREAMING,
        DONE,
        conditions="exceeds_output_budget",
        before="end_turn_at_budget",
    ),
    _row("llm_delta", STREAMING, None, after="emit_delta"),
    _row("llm_delta", NOT_STREAMING, None, after="reject_stale"),
    # llm_tool_calls: the complete calls of the current response
    _row("llm_tool_calls", STREAMING, None, unless="is_current_request", after="reject_stale"),
    _row("llm_tool_calls", STREAMING, None, after="collect_tool_calls"),
    _row("llm_tool_calls", NOT_STREAMING, None, after="reject_stale"),
    # llm_end: the response is complete; run its calls, repair them, or finish the turn
    _row("llm_end", STREAMING, None, unless="is_current_request", after="reject_stale"),
    _row(
        "llm_end",
        STREAMING,
        None,
        conditions="is_compaction",
        before="apply_compaction",
        after="request_llm",
    ),
    _row("llm_end", STREAMING, ERROR, conditions="repeats_stuck_call", before="end_turn_stuck"),
    _row(
        "llm_end",
        STREAMING,
        AWAITING_TOOL,
        conditions="has_calls_for_ide",
        before="dispatch_tool_calls",
    ),
    _row(
        "llm_end",
        STREAMING,
        ERROR,
        conditions=["has_tool_calls", "is_at_step_limit"],
        before="end_turn_max_steps",
    ),
    _row(
        "llm_end",
        STREAMING,
        None,
        conditions="has_tool_calls",
        before="answer_invalid_calls",
        after="request_llm",
    ),
    _row(
        "llm_end",
        STREAMING,
        None,
        conditions="continues_for_queue",
        before="continue_with_queue",
        after="request_llm",
    ),
    _row("llm_end", STREAMING, DONE, before="finish_turn"),
    _row("llm_end", NOT_STREAMING, None, after="reject_stale"),
    # llm_failed: the model or its endpoint failed
    _row("llm_failed", STREAMING, None, unless="is_current_request", after="reject_stale"),
    _row(
        "llm_failed",
        STREAMING,
        None,
        conditions="is_compaction",
        before="fall_back_to_dropping",
        after="request_llm",
    ),
    _row(
        "llm_failed",
        STREAMING,
        None,
        conditions="can_retry_overflow",
        before="shrink_for_retry",
        after="request_llm",
    ),
    _row("llm_failed", STREAMING, ERROR, before="fail_turn"),
    _row("llm_failed", NOT_STREAMING, None, after="reject_stale"),
    # tool_result: the IDE's answer to a pending call
    _row(
        "tool_result",
        AWAITING_TOOL,
        None,
        unless="is_pending_call",
        after="reject_unexpected_result",
    ),
    _row(
        "tool_result",
        AWAITING_TOOL,
        None,
        conditions="awaits_approval",
        after="reject_result_before_approval",
    ),
    _row(
        "tool_result",
        AWAITING_TOOL,
        ERROR,
        conditions=["completes_step", "is_at_step_limit"],
        before=["record_result", "end_turn_max_steps"],
    ),
    _row(
        "tool_result",
        AWAITING_TOOL,
        STREAMING,
        conditions="completes_step",
        before="record_result",
        after="request_llm",
    ),
    _row("tool_result", AWAITING_TOOL, None, after="record_result"),
    _row("tool_result", NOT_AWAITING, None, after="reject_unexpected_result"),
    # tool_timeout: a pending call's timer ran out; the model gets an error result
    _row("tool_timeout", AWAITING_TOOL, None, unless="is_pending_call", after="reject_stale"),
    _row(
        "tool_timeout",
        AWAITING_TOOL,
        ERROR,
        conditions=["completes_step", "is_at_step_limit"],
        before=["record_timeout", "end_turn_max_steps"],
    ),
    _row(
        "tool_timeout",
        AWAITING_TOOL,
        STREAMING,
        conditions="completes_step",
        before="record_timeout",
        after="request_llm",
    ),
    _row("tool_timeout", AWAITING_TOOL, None, after="record_timeout"),
    _row("tool_timeout", NOT_AWAITING, None, after="reject_stale"),
    # turn_deadline: the turn ran out of time; its text so far is the answer
    _row("turn_deadline", IN_TURN, None, unless="is_current_turn", after="reject_stale"),
    _row("turn_deadline", IN_TURN, DONE, before="end_turn_at_deadline"),
    _row("turn_deadline", AT_REST, None, after="reject_stale"),
    # approval: the user's decision on a write call that waits for it
    _row(
        "approval",
        AWAITING_TOOL,
        None,
        unless="awaits_approval",
        after="reject_unexpected_approval",
    ),
    _row(
        "approval",
        AWAITING_TOOL,
        None,
        conditions="is_read_only",
        unless="is_rejection",
        after="reject_allow_when_read_only",
    ),
    _row(
        "approval",
        AWAITING_TOOL,
        DONE,
        conditions=["is_rejection", "ends_turn"],
        before="reject_call_and_end_turn",
    ),
    _row(
        "approval",
        AWAITING_TOOL,
        ERROR,
        conditions=["is_rejection", "completes_step", "is_at_step_limit"],
        before=["record_rejection", "end_turn_max_steps"],
    ),
    _row(
        "approval",
        AWAITING_TOOL,
        STREAMING,
        conditions=["is_rejection", "completes_step"],
        before="record_rejection",
        after="request_llm",
    ),
    _row("approval", AWAITING_TOOL, None, conditions="is_rejection", after="record_rejection"),
    _row("approval", AWAITING_TOOL, None, after="allow_call"),
    _row("approval", NOT_AWAITING, None, after="reject_unexpected_approval"),
    # set_approval: the mode changes in any state; calls waiting for approval keep waiting
    _row("set_approval", ALL, None, unless="can_use_mode", after="reject_mode_without_feature"),
    _row("set_approval", ALL, None, after="change_mode"),
    # files_reverted: the IDE undid a turn's changes; the model is told between turns
    _row("files_reverted", AT_REST, None, after="note_revert"),
    _row("files_reverted", IN_TURN, None, after="reject_busy"),
    # cancel: stop the running turn
    _row("cancel", IN_TURN, IDLE, before="cancel_turn"),
    _row("cancel", AT_REST, None, after="reject_nothing_to_cancel"),
]

"""The session core: one agent session as a pure state machine, `handle(event) -> commands`.

Rules this module lives by:
- No asyncio, no sockets, no clock, no randomness. Ids are counters
  (`t1`, `c1`, `t1.2`), times do not exist here; timers are commands the
  runtime executes and events it feeds back.
- Everything that moves the state lives in `orchestrator.table`; the methods
  of `SessionCore` are its guards (pure) and actions (they only append
  commands and update the conversation).
- Nothing raises out of `handle`: an event the table refuses in the current
  state yields a `RejectEvent` and changes nothing.
- The conversation (`messages`) is always one an OpenAI endpoint accepts: every
  assistant tool call is answered by a tool message before anything else is
  appended, also after a cancel, a timeout, a failure or a limit.

Theory of operation: a turn starts with a user message and makes model
requests (steps). A step's response is text, tool calls, or both. Valid calls
go to the IDE at once; the next request starts when every call of the step is
answered (results in call order). Invalid calls never reach the IDE: the model
gets an error result with the tool's schema. A turn ends with `agent_message`
(state `done`), a failure or limit (`error`), or a cancel (`idle`).

The user stays in control: in the approval mode `ask` a write call waits for the
user's decision (`approval_request`) and counts as pending until it is allowed
and answered, or rejected (the model gets the rejection as the call's result);
`read-only` offers no write tool at all, `auto-edit` runs them. Messages the
user sends during a turn (steering) are queued and join the conversation at
the next step boundary, after the step's tool results; a turn that ends with
messages still queued adds them to the conversation for the next one (a cancel
drops them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from transitions import EventData, Machine, MachineError

from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
    StartTurnTimer,
)
from orchestrator.context import (
    Anchor,
    chars_tokens,
    compaction_boundary,
    compaction_request,
    dropped_message,
    fit,
    message_tokens,
    summary_message,
    worth_compacting,
)
from orchestrator.events import (
    ApprovalAnswered,
    ApprovalModeSet,
    Event,
    FilesRevertedByUser,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    SeqFloorRaised,
    ToolResultReceived,
    ToolTimedOut,
    TurnDeadlineReached,
    UserMessageReceived,
)
from orchestrator.table import STATES, TRANSITIONS
from wire import (
    BY_IDE_NAME,
    CORE_TOOL_NAMES,
    FEATURE_APPROVALS,
    FEATURE_STEERING,
    WRITE_TOOL_NAMES,
    AgentDelta,
    AgentMessage,
    ApprovalDecision,
    ApprovalMode,
    ApprovalModeChanged,
    ApprovalRequest,
    ApprovalSource,
    ContextReport,
    ContextUsage,
    Decision,
    Error,
    ErrorCode,
    ErrorSource,
    FilesRevertedEvent,
    NumberedEvent,
    SessionState,
    StateChanged,
    ToolArgumentsError,
    ToolCall,
    ToolErrorCode,
    Usage,
    UserMessageQueued,
    openai_tools,
    parse_llm_call,
    written_paths,
)

DEFAULT_SYSTEM_PROMPT = (
    "You are a coding agent working in the user's workspace through the tools its IDE "
    "offers you; they run in the IDE. Paths are relative to the workspace root. Read before "
    "you change, prefer apply_patch with a unified diff for edits when it is offered, and "
    "finish with a short summary of what you changed."
)
"""Names no tool: which tools a session offers depends on its IDE's capabilities."""
STUCK_REPEATS = 3
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# What became of a call sent to the IDE, as a refused result's message says it
_ANSWERED = "answered"
_TIMED_OUT = "timed out"
_CANCELLED = "cancelled"
_STOPPED = "stopped at the turn deadline"
_ENDED = "stopped when the user ended the turn"
# Why a turn ended at one of its output limits, as `agent_message.finish_reason` says it
FINISH_OUTPUT_BUDGET = "output_budget"
FINISH_DEADLINE = "deadline"
FINISH_REJECTED = "rejected"
REVERT_NOTE_PATHS = 200
"""A revert's note names at most this many files (and counts the rest)."""
"""The user rejected a call and ended the turn (`approval` with `end_turn`)."""
# On a context overflow the upstream counted more than the estimate: later requests of the
# session are held to this share of the failed request's estimated size.
OVERFLOW_SHRINK = 0.75


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Limits, prompt and tools of a session; the same config replays the same session.

    `tools` are the IDE tools the model is offered (the IDE's capabilities met with the
    registry), `features` the optional protocol features the session uses.
    """

    max_steps: int = 25
    tool_timeout_s: float = 120.0
    max_tool_output_chars: int = 64_000
    max_user_message_chars: int = 256_000
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tools: tuple[str, ...] = CORE_TOOL_NAMES
    features: tuple[str, ...] = ()
    context_window: int = 0
    """Tokens the model takes in a request and its answer; 0: no budget, no `context` events."""
    output_reserve: int = 0
    """Tokens of the window kept for the answer; 0: `max_tokens`, or a quarter of the window."""
    max_tokens: int = 0
    """`max_tokens` of every model request; 0: not sent (the upstream's own limit)."""
    max_turn_output_tokens: int = 0
    """Tokens the model may write in one turn, all steps together; 0: no budget."""
    turn_deadline_s: float = 0.0
    """Seconds a turn may run before it is ended; 0: no deadline."""
    approval: str = ApprovalMode.AUTO_EDIT.value
    """The approval mode the session starts in (`wire.ApprovalMode`); `set_approval` changes
    it. `ask` only with the `approvals` feature, so an IDE is never asked what it cannot
    answer."""

    @property
    def prompt_limit(self) -> int:
        """Tokens a request's prompt may have: the window less the output reserve."""
        reserve = self.output_reserve or self.max_tokens or self.context_window // 4
        return max(self.context_window // 4, self.context_window - reserve)


@dataclass(slots=True)
class _StepCall:
    """One tool call of the current model response and, once known, its answer."""

    call_id: str
    model_call: ModelToolCall
    ide_name: str | None
    arguments: dict[str, Any] | None
    problem: str | None
    answer: str | None = None
    awaiting_approval: bool = False


@dataclass(slots=True)
class _Tally:
    """Tokens used: as the upstream reported them, and estimated where it did not."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_prompt: int = 0
    estimated_completion: int = 0

    def add(self, reported_prompt: int, reported_completion: int, prompt: int, out: int) -> None:
        """Count one response: its reported figures, else the estimates `prompt` and `out`."""
        self.prompt_tokens += reported_prompt
        self.completion_tokens += reported_completion
        if not reported_prompt:
            self.estimated_prompt += prompt
        if not reported_completion:
            self.estimated_completion += out

    def view(self) -> ContextUsage:
        """The tally as the IDE sees it: estimates included and flagged."""
        return ContextUsage(
            prompt_tokens=self.prompt_tokens + self.estimated_prompt,
            completion_tokens=self.completion_tokens + self.estimated_completion,
            estimated=bool(self.estimated_prompt or self.estimated_completion),
        )


@dataclass(slots=True)
class _Turn:
    """The running turn: its text so far, its steps and the current step's calls."""

    turn_id: str
    steps: int = 0
    request_id: str | None = None
    text_parts: list[str] = field(default_factory=list)
    step_text_parts: list[str] = field(default_factory=list)
    calls: list[_StepCall] = field(default_factory=list)
    pending: dict[str, _StepCall] = field(default_factory=dict)
    usage: _Tally = field(default_factory=_Tally)
    last_call_key: str | None = None
    call_key_run: int = 0
    # the request the turn waits for: what was sent and its estimated prompt size
    request_view: tuple[dict[str, Any], ...] = ()
    request_tokens: int = 0
    step_chars: int = 0
    # compaction: a summary request runs instead of a step while `compacting`
    compacting: bool = False
    compaction_boundary: int = 1
    summary_parts: list[str] = field(default_factory=list)
    compacted_this_step: bool = False
    force_compaction: bool = False
    overflow_retried: bool = False
    # steering: messages the user sent during the turn, for its next step
    queued: list[str] = field(default_factory=list)


def _call_key(call: ModelToolCall) -> str:
    try:
        canonical = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True)
    except (ValueError, RecursionError):
        canonical = call.arguments
    return f"{call.name}\x00{canonical}"


def _replayable_name(name: str) -> str:
    """The model's tool name if OpenAI accepts it back in a conversation, else a placeholder."""
    return name if _FUNCTION_NAME.fullmatch(name) else "invalid_tool_name"


def _replayable_arguments(arguments: str) -> str:
    """The model's arguments if they are a JSON object, else `{}`: upstreams parse them."""
    try:
        is_object = isinstance(json.loads(arguments), dict)
    except (ValueError, RecursionError):
        is_object = False
    return arguments if is_object else "{}"


# One machine for every session, used as a table only: no session is ever added to it as a
# model, so it references none. `handle` passes the core to the event it triggers; the state
# lives on the core, and the core lives exactly as long as its owner keeps it. (A machine per
# session cost ~40 KiB each; registered models made every new session scan all the others.)
SESSION_MACHINE = Machine(
    model=None,
    states=list(STATES),
    transitions=TRANSITIONS,
    initial=SessionState.IDLE,
    auto_transitions=False,
    queued=True,
    send_event=True,
    after_state_change="emit_state",
)


class SessionCore:
    """One session's state machine. Feed events to `handle`; execute the commands it returns."""

    state: SessionState

    def __init__(self, session_id: str, config: CoreConfig | None = None) -> None:
        self.session_id = session_id
        self.config = config or CoreConfig()
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.config.system_prompt}
        ]
        self._seq = 0
        self._turns = 0
        self._calls = 0
        self._turn: _Turn | None = None
        self._call_fates: dict[str, str] = {}
        self._out: list[Command] = []
        self._usage = _Tally()
        self._anchor: Anchor | None = None
        self._elided: frozenset[str] = frozenset()
        self._compactions = 0
        self._compaction_attempts = 0
        self._limit_cap: int | None = None
        self._mode = self.config.approval
        self._allowed_tools: set[str] = set()
        self._allowed_paths: set[tuple[str, str]] = set()
        SESSION_MACHINE.set_state(SessionState.IDLE, model=self)

    # ---- input -------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        """Apply one event; return the commands to execute, in order."""
        if type(event) is SeqFloorRaised:
            self._seq = max(self._seq, event.seq)
            return []
        self._out = []
        try:
            SESSION_MACHINE.events[event.trigger].trigger(self, event=event)
        except MachineError:
            self._reject(event, ErrorCode.ILLEGAL_EVENT, "is not allowed")
        out, self._out = self._out, []
        return out

    # ---- read-only views ---------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Highest seq emitted so far (0 before the first event)."""
        return self._seq

    @property
    def turn_id(self) -> str | None:
        """Id of the running turn, if any."""
        return self._turn.turn_id if self._turn else None

    @property
    def current_request_id(self) -> str | None:
        """Id of the LLM request whose events are accepted now."""
        return self._turn.request_id if self._turn else None

    @property
    def pending_call_ids(self) -> tuple[str, ...]:
        """Tool calls sent to the IDE (as `tool_call` or `approval_request`) and not answered
        yet, in call order."""
        return tuple(self._turn.pending) if self._turn else ()

    @property
    def approval_mode(self) -> str:
        """The session's approval mode now (`wire.ApprovalMode`)."""
        return self._mode

    @property
    def calls_awaiting_approval(self) -> tuple[str, ...]:
        """Pending calls the user has not decided on yet, in call order."""
        if self._turn is None:
            return ()
        return tuple(c.call_id for c in self._turn.pending.values() if c.awaiting_approval)

    # ---- guards (pure) -----------------------------------------------------------------

    def is_message_too_large(self, ev: EventData) -> bool:
        """The user's message is longer than `max_user_message_chars`."""
        event: UserMessageReceived = ev.kwargs["event"]
        return len(event.content) > self.config.max_user_message_chars

    def is_current_request(self, ev: EventData) -> bool:
        """The LLM event belongs to the request the turn is waiting for."""
        request_id: str = ev.kwargs["event"].request_id
        return self._turn is not None and request_id == self._turn.request_id

    def has_tool_calls(self, ev: EventData) -> bool:
        """The response asked for at least one tool call, valid or not."""
        return bool(self._turn and self._turn.calls)

    def has_calls_for_ide(self, ev: EventData) -> bool:
        """At least one call of the response is valid and goes to the IDE."""
        return bool(self._turn and any(c.problem is None for c in self._turn.calls))

    def repeats_stuck_call(self, ev: EventData) -> bool:
        """The response makes the same call (tool and arguments) the 3rd time in a row."""
        if self._turn is None:
            return False
        key, run = self._turn.last_call_key, self._turn.call_key_run
        for call in self._turn.calls:
            this = _call_key(call.model_call)
            run = run + 1 if this == key else 1
            key = this
            if run >= STUCK_REPEATS:
                return True
        return False

    def is_at_step_limit(self, ev: EventData) -> bool:
        """The turn already made `max_steps` model calls."""
        return self._turn is not None and self._turn.steps >= self.config.max_steps

    def is_pending_call(self, ev: EventData) -> bool:
        """The call id is sent to the IDE and not answered yet."""
        call_id: str = ev.kwargs["event"].call_id
        return self._turn is not None and call_id in self._turn.pending

    def completes_step(self, ev: EventData) -> bool:
        """The call is the step's last pending one: its answer completes the step."""
        call_id: str = ev.kwargs["event"].call_id
        return self._turn is not None and list(self._turn.pending) == [call_id]

    def is_compaction(self, ev: EventData) -> bool:
        """The request is a compaction: the model summarises the older conversation."""
        return self._turn is not None and self._turn.compacting

    def exceeds_output_budget(self, ev: EventData) -> bool:
        """With this text the turn's output passes `max_turn_output_tokens`."""
        budget = self.config.max_turn_output_tokens
        if not budget or self._turn is None:
            return False
        event: LlmTextDelta = ev.kwargs["event"]
        written = self._turn.usage.completion_tokens + self._turn.usage.estimated_completion
        return written + chars_tokens(self._turn.step_chars + len(event.text)) > budget

    def can_retry_overflow(self, ev: EventData) -> bool:
        """The request overflowed the model's context window, before any text; not retried yet."""
        event: LlmFailed = ev.kwargs["event"]
        turn = self._turn
        return (
            event.code == ErrorCode.LLM_CONTEXT_EXCEEDED
            and self.config.context_window > 0
            and turn is not None
            and not turn.overflow_retried
            and not turn.step_text_parts
        )

    def is_current_turn(self, ev: EventData) -> bool:
        """The deadline belongs to the running turn."""
        event: TurnDeadlineReached = ev.kwargs["event"]
        return self._turn is not None and event.turn_id == self._turn.turn_id

    def uses_steering(self, ev: EventData) -> bool:
        """The IDE declared `steering`: a message during a turn is queued, not refused."""
        return FEATURE_STEERING in self.config.features

    def continues_for_queue(self, ev: EventData) -> bool:
        """The model answered while messages are queued and the turn may make another step."""
        turn = self._turn
        return turn is not None and bool(turn.queued) and turn.steps < self.config.max_steps

    def awaits_approval(self, ev: EventData) -> bool:
        """The call is pending and the user has not decided on it yet."""
        call_id: str = ev.kwargs["event"].call_id
        call = self._turn.pending.get(call_id) if self._turn else None
        return call is not None and call.awaiting_approval

    def is_rejection(self, ev: EventData) -> bool:
        """The user rejected the call."""
        event: ApprovalAnswered = ev.kwargs["event"]
        return event.decision == Decision.REJECT

    def ends_turn(self, ev: EventData) -> bool:
        """The user's rejection also ends the turn."""
        event: ApprovalAnswered = ev.kwargs["event"]
        return event.end_turn

    def is_read_only(self, ev: EventData) -> bool:
        """The session is `read-only`: no write call may run."""
        return self._mode == ApprovalMode.READ_ONLY

    def can_use_mode(self, ev: EventData) -> bool:
        """The mode is one this IDE can live with: `ask` needs the `approvals` feature."""
        event: ApprovalModeSet = ev.kwargs["event"]
        return event.mode != ApprovalMode.ASK or FEATURE_APPROVALS in self.config.features

    # ---- actions -----------------------------------------------------------------------

    def emit_state(self, ev: EventData) -> None:
        """Emit `state` after every move to another state: the last command of its step."""
        transition = ev.transition
        if transition is None or transition.dest is None or transition.source == transition.dest:
            return
        self._emit(
            StateChanged(
                session_id=self.session_id,
                seq=self._next_seq(),
                state=SessionState[transition.dest],
                previous=SessionState[transition.source],
            )
        )

    def begin_turn(self, ev: EventData) -> None:
        """Open a new turn and append the user's message to the conversation."""
        event: UserMessageReceived = ev.kwargs["event"]
        self._turns += 1
        self._turn = _Turn(turn_id=f"t{self._turns}")
        self.messages.append({"role": "user", "content": event.content})
        if self.config.turn_deadline_s > 0:
            self._out.append(StartTurnTimer(self._turn.turn_id, self.config.turn_deadline_s))

    def request_llm(self, ev: EventData) -> None:
        """Start the turn's next model call (a step) with the conversation fitted to the context
        window: old tool outputs elided first, then, if it still does not fit, a compaction."""
        turn = self._live_turn()
        self._deliver_queue()
        if not self.config.context_window:
            self._start_step(tuple(self.messages), 0)
            return
        limit = self._prompt_limit()
        fitted = fit(
            self.messages, openai_tools(self._offered()), limit, self._anchor, self._elided
        )
        boundary = compaction_boundary(self.messages)
        wants_compaction = turn.force_compaction or not fitted.fits(limit)
        if (
            wants_compaction
            and not turn.compacted_this_step
            and worth_compacting(self.messages, boundary, self._summary_tokens(limit))
        ):
            self._start_compaction(boundary, limit)
            return
        self._elided = fitted.elided
        self._emit(
            ContextReport(
                session_id=self.session_id,
                seq=self._next_seq(),
                turn_id=turn.turn_id,
                tokens=fitted.size.tokens,
                window=self.config.context_window,
                estimated=fitted.size.estimated,
                compactions=self._compactions,
                compacted=turn.compacted_this_step,
                elided=fitted.elided_count,
                turn_usage=turn.usage.view(),
                session_usage=self._usage.view(),
            )
        )
        self._start_step(fitted.view, fitted.size.tokens)

    def collect_summary(self, ev: EventData) -> None:
        """Keep the compaction's streamed text: the summary, never shown as the agent's answer."""
        event: LlmTextDelta = ev.kwargs["event"]
        self._live_turn().summary_parts.append(event.text)

    def apply_compaction(self, ev: EventData) -> None:
        """Replace the older conversation with the summary; the current turn stays verbatim."""
        event: LlmStreamEnded = ev.kwargs["event"]
        turn = self._live_turn()
        self._count_usage(
            event.prompt_tokens, event.completion_tokens, sum(map(len, turn.summary_parts))
        )
        summary = "".join(turn.summary_parts).strip()
        if not summary:
            self._drop_older_part("the model answered the summary request with no text")
            return
        self._replace_older_part(summary_message(summary))
        self._compactions += 1

    def fall_back_to_dropping(self, ev: EventData) -> None:
        """The compaction failed: drop the older conversation with a visible notice instead."""
        event: LlmFailed = ev.kwargs["event"]
        self._drop_older_part(event.message)

    def shrink_for_retry(self, ev: EventData) -> None:
        """The upstream refused the request as too long: hold the session's requests to less
        than it was, compact once and retry the step once."""
        turn = self._live_turn()
        turn.overflow_retried = True
        turn.force_compaction = True
        shrunk = int(turn.request_tokens * OVERFLOW_SHRINK)
        self._limit_cap = shrunk if self._limit_cap is None else min(self._limit_cap, shrunk)

    def emit_delta(self, ev: EventData) -> None:
        """Emit the streamed text as `agent_delta` (empty text emits nothing)."""
        event: LlmTextDelta = ev.kwargs["event"]
        if not event.text:
            return
        turn = self._live_turn()
        turn.text_parts.append(event.text)
        turn.step_text_parts.append(event.text)
        turn.step_chars += len(event.text)
        self._seq += 1
        self._out.append(
            EmitEvent(
                AgentDelta.model_construct(
                    session_id=self.session_id, seq=self._seq, turn_id=turn.turn_id, text=event.text
                )
            )
        )

    def collect_tool_calls(self, ev: EventData) -> None:
        """Number the response's calls and check them against the tools' schemas (a compaction's
        are dropped: it offered no tools)."""
        event: LlmToolCallsCompleted = ev.kwargs["event"]
        turn = self._live_turn()
        if turn.compacting:
            return
        for model_call in event.calls:
            self._calls += 1
            call_id = f"c{self._calls}"
            try:
                spec, arguments = parse_llm_call(
                    model_call.name, model_call.arguments, self._offered()
                )
            except ToolArgumentsError as exc:
                turn.calls.append(_StepCall(call_id, model_call, None, None, exc.message))
            else:
                turn.calls.append(_StepCall(call_id, model_call, spec.ide_name, arguments, None))

    def dispatch_tool_calls(self, ev: EventData) -> None:
        """Report invalid calls, emit every valid call as `tool_call`, or as `approval_request`
        when it needs the user's decision, and start their timers."""
        turn = self._open_step(ev.kwargs["event"])
        for call in turn.calls:
            if call.problem is not None:
                continue
            assert call.ide_name is not None and call.arguments is not None
            turn.pending[call.call_id] = call
            source = self._approval_source(call.ide_name, call.arguments)
            if source is None:
                call.awaiting_approval = True
                self._emit(
                    ApprovalRequest(
                        session_id=self.session_id,
                        seq=self._next_seq(),
                        turn_id=turn.turn_id,
                        call_id=call.call_id,
                        tool=call.ide_name,
                        arguments=call.arguments,
                    )
                )
            else:
                self._emit_tool_call(call, source)
        for call_id in turn.pending:
            self._out.append(StartToolTimer(call_id=call_id, seconds=self.config.tool_timeout_s))

    def answer_invalid_calls(self, ev: EventData) -> None:
        """Report the invalid calls and answer each with its error for the model."""
        self._open_step(ev.kwargs["event"])
        self._close_step()

    def record_result(self, ev: EventData) -> None:
        """Clear the call's timer and keep its result; a failed tool is also reported."""
        event: ToolResultReceived = ev.kwargs["event"]
        turn = self._live_turn()
        call = turn.pending.pop(event.call_id)
        self._out.append(ClearToolTimer(call_id=call.call_id))
        self._call_fates[call.call_id] = _ANSWERED
        if event.ok:
            call.answer = self._clip(json.dumps(event.output, ensure_ascii=False))
        else:
            code = event.error_code or ErrorCode.TOOL_FAILED
            message = event.error_message or "the tool failed without a message"
            self._emit_error(code, f"{call.ide_name}: {message}", ErrorSource.IDE, call.call_id)
            error: dict[str, Any] = {"code": code, "message": message}
            if event.error_details is not None:
                error["details"] = event.error_details
            call.answer = self._clip(json.dumps({"error": error}, ensure_ascii=False))
        if not turn.pending:
            self._close_step()

    def record_timeout(self, ev: EventData) -> None:
        """Report the timeout and answer the call with a timeout error for the model."""
        event: ToolTimedOut = ev.kwargs["event"]
        turn = self._live_turn()
        call = turn.pending.pop(event.call_id)
        self._call_fates[call.call_id] = _TIMED_OUT
        message = f"{call.ide_name} got no result within {self.config.tool_timeout_s:g} s"
        self._emit_error(ErrorCode.TIMEOUT, message, ErrorSource.IDE, call.call_id)
        call.answer = json.dumps({"error": {"code": ErrorCode.TIMEOUT, "message": message}})
        if not turn.pending:
            self._close_step()

    def queue_message(self, ev: EventData) -> None:
        """Keep the user's message for the turn's next step and say so: `user_message_queued`."""
        event: UserMessageReceived = ev.kwargs["event"]
        turn = self._live_turn()
        turn.queued.append(event.content)
        self._emit(
            UserMessageQueued(
                session_id=self.session_id,
                seq=self._next_seq(),
                turn_id=turn.turn_id,
                text=event.content,
            )
        )

    def continue_with_queue(self, ev: EventData) -> None:
        """The model answered, but the user wrote meanwhile: keep the answer and go on."""
        event: LlmStreamEnded = ev.kwargs["event"]
        turn = self._live_turn()
        self._end_step(event)
        self.messages.append({"role": "assistant", "content": "".join(turn.step_text_parts)})

    def allow_call(self, ev: EventData) -> None:
        """Remember the user's rule (`allow_tool`, `allow_path`), report the decision and send
        the call as `tool_call`, its timer started again."""
        event: ApprovalAnswered = ev.kwargs["event"]
        call = self._live_turn().pending[event.call_id]
        assert call.ide_name is not None and call.arguments is not None
        if event.decision == Decision.ALLOW_TOOL:
            self._allowed_tools.add(call.ide_name)
        elif event.decision == Decision.ALLOW_PATH:
            self._allowed_paths |= {(call.ide_name, p) for p in written_paths(call.arguments)}
        call.awaiting_approval = False
        self._out.append(ClearToolTimer(call_id=call.call_id))
        self._emit_decision(event)
        self._emit_tool_call(call, ApprovalSource.USER)
        self._out.append(StartToolTimer(call_id=call.call_id, seconds=self.config.tool_timeout_s))

    def record_rejection(self, ev: EventData) -> None:
        """Report the decision and answer the call for the model as rejected by the user."""
        event: ApprovalAnswered = ev.kwargs["event"]
        turn = self._live_turn()
        self._answer_rejected(event)
        self._emit_decision(event)
        if not turn.pending:
            self._close_step()

    def reject_call_and_end_turn(self, ev: EventData) -> None:
        """Answer the rejected call, stop the step's other calls and end the turn with its text
        so far (`finish_reason` `rejected`)."""
        event: ApprovalAnswered = ev.kwargs["event"]
        self._answer_rejected(event)
        self._stop_pending_calls(
            _ENDED, "stopped", "the user rejected another call and ended the turn"
        )
        self._emit_decision(event)
        self._emit_answer(FINISH_REJECTED)

    def change_mode(self, ev: EventData) -> None:
        """Take the new approval mode for the calls to come: `approval_mode`."""
        event: ApprovalModeSet = ev.kwargs["event"]
        self._mode = event.mode
        if event.mode == ApprovalMode.READ_ONLY and self._turn is not None:
            self._refuse_undispatched_writes(self._turn)
        self._emit(
            ApprovalModeChanged(session_id=self.session_id, seq=self._next_seq(), mode=event.mode)
        )

    def _refuse_undispatched_writes(self, turn: _Turn) -> None:
        """Write calls of the response still streaming were checked while writes were
        offered; now that the session is read-only they are answered as not offered."""
        for call in turn.calls:
            if (
                call.problem is None
                and call.ide_name in WRITE_TOOL_NAMES
                and call.answer is None
                and call.call_id not in turn.pending
            ):
                call.problem = (
                    f"tool {call.model_call.name!r} is not offered: the session is read-only"
                )

    def note_revert(self, ev: EventData) -> None:
        """Tell the model that these files are back as before that turn: `files_reverted`."""
        event: FilesRevertedByUser = ev.kwargs["event"]
        self._emit(
            FilesRevertedEvent(
                session_id=self.session_id,
                seq=self._next_seq(),
                turn_id=event.turn_id,
                paths=list(event.paths),
            )
        )
        self.messages.append({"role": "user", "content": revert_note(event.turn_id, event.paths)})

    def finish_turn(self, ev: EventData) -> None:
        """Append the answer to the conversation and emit `agent_message`."""
        event: LlmStreamEnded = ev.kwargs["event"]
        turn = self._live_turn()
        self._end_step(event)
        self.messages.append({"role": "assistant", "content": "".join(turn.step_text_parts)})
        self._emit_answer(event.finish_reason)

    def end_turn_at_budget(self, ev: EventData) -> None:
        """Stop the model at the turn's output budget: its text so far is the answer
        (`finish_reason` `output_budget`)."""
        turn = self._live_turn()
        assert turn.request_id is not None
        self._out.append(AbortLlmRequest(request_id=turn.request_id))
        self.emit_delta(ev)
        self._count_usage(0, 0, turn.step_chars)
        self._keep_partial_text()
        self._emit_answer(FINISH_OUTPUT_BUDGET)

    def end_turn_at_deadline(self, ev: EventData) -> None:
        """End the turn at its deadline: the model call is aborted or the pending calls are
        answered as stopped; the text so far is the answer (`finish_reason` `deadline`)."""
        turn = self._live_turn()
        if self.state == SessionState.STREAMING:
            assert turn.request_id is not None
            self._out.append(AbortLlmRequest(request_id=turn.request_id))
            self._count_usage(0, 0, turn.step_chars)
            self._keep_partial_text()
        else:
            self._stop_pending_calls(_STOPPED, FINISH_DEADLINE, "the turn reached its deadline")
        self._emit_answer(FINISH_DEADLINE)

    def end_turn_stuck(self, ev: EventData) -> None:
        """Answer the response's calls without running them and end the turn: `stuck`."""
        turn = self._open_step(ev.kwargs["event"], report_invalid=False)
        reason = f"not run: the same call was repeated {STUCK_REPEATS} times in a row"
        for call in turn.calls:
            if call.answer is None:
                call.answer = json.dumps({"error": {"code": ErrorCode.STUCK, "message": reason}})
        self._close_step()
        self._end_turn_with_error(
            ErrorCode.STUCK,
            f"The model called the same tool with the same arguments {STUCK_REPEATS} times in a "
            "row; the turn was stopped. Send a new message to continue.",
        )

    def end_turn_max_steps(self, ev: EventData) -> None:
        """End the turn at the step cap: `max_steps` (a response's invalid calls are answered)."""
        event = ev.kwargs["event"]
        if isinstance(event, LlmStreamEnded):
            self._open_step(event)
            self._close_step()
        self._end_turn_with_error(
            ErrorCode.MAX_STEPS,
            f"The turn reached its limit of {self.config.max_steps} model calls and was stopped. "
            "Send a new message to continue.",
        )

    def fail_turn(self, ev: EventData) -> None:
        """Keep the text streamed so far and report the model's failure (source `llm`)."""
        event: LlmFailed = ev.kwargs["event"]
        self._keep_partial_text()
        self._emit_error(event.code, event.message, ErrorSource.LLM, None)
        self._end_turn()

    def cancel_turn(self, ev: EventData) -> None:
        """Abort the model call or drop the pending calls (timers cleared); keep streamed text,
        drop the queued messages."""
        turn = self._live_turn()
        turn.queued.clear()
        if self.state == SessionState.STREAMING:
            assert turn.request_id is not None
            self._out.append(AbortLlmRequest(request_id=turn.request_id))
            self._keep_partial_text()
        else:
            self._stop_pending_calls(_CANCELLED, "cancelled", "cancelled by the user")
        self._turn = None

    # ---- rejections --------------------------------------------------------------------

    def reject_too_large(self, ev: EventData) -> None:
        """Refuse the message: `too_large`."""
        limit = self.config.max_user_message_chars
        self._reject(ev.kwargs["event"], ErrorCode.TOO_LARGE, f"is over {limit} characters")

    def reject_busy(self, ev: EventData) -> None:
        """Refuse the message while a turn runs: `busy`, echoing its id."""
        self._reject(
            ev.kwargs["event"], ErrorCode.BUSY, "is refused: a turn is running; wait or cancel it"
        )

    def reject_stale(self, ev: EventData) -> None:
        """Drop an event of a request or timer that no longer matters: `illegal_event`."""
        self._reject(ev.kwargs["event"], ErrorCode.ILLEGAL_EVENT, "is stale and was dropped")

    def reject_nothing_to_cancel(self, ev: EventData) -> None:
        """Refuse a cancel with no running turn: `nothing_to_cancel`."""
        self._reject(ev.kwargs["event"], ErrorCode.NOTHING_TO_CANCEL, "has no running turn to stop")

    def reject_unexpected_result(self, ev: EventData) -> None:
        """Refuse a result of no pending call: `duplicate_result`, `late_result`, `unknown_call_id`.

        A call that never reached the IDE (invalid or stuck) is unknown to the client.
        """
        self._reject_answer(ev.kwargs["event"])

    def reject_result_before_approval(self, ev: EventData) -> None:
        """Refuse a result of a call the user has not allowed yet: `approval_pending`."""
        self._reject(
            ev.kwargs["event"],
            ErrorCode.APPROVAL_PENDING,
            "answers a call that waits for the user's approval: no tool_call was sent for it",
        )

    def reject_unexpected_approval(self, ev: EventData) -> None:
        """Refuse a decision on no call waiting for one: `duplicate_result` (also for a call
        already allowed), `late_result`, `unknown_call_id`, as for a tool result."""
        event: ApprovalAnswered = ev.kwargs["event"]
        if self._turn is not None and event.call_id in self._turn.pending:
            self._reject(event, ErrorCode.DUPLICATE_RESULT, "decides on a call already allowed")
        else:
            self._reject_answer(event)

    def reject_allow_when_read_only(self, ev: EventData) -> None:
        """Refuse to allow a write call while the session is read-only: `read_only`."""
        self._reject(
            ev.kwargs["event"],
            ErrorCode.READ_ONLY,
            "cannot allow a write call in a read-only session: reject it or change the mode",
        )

    def reject_mode_without_feature(self, ev: EventData) -> None:
        """Refuse `ask` from an IDE that cannot answer approvals: `invalid_frame`."""
        self._reject(
            ev.kwargs["event"],
            ErrorCode.INVALID_FRAME,
            "cannot take mode ask: the IDE did not declare the approvals feature",
        )

    # ---- helpers -----------------------------------------------------------------------

    def _reject_answer(self, event: ToolResultReceived | ApprovalAnswered) -> None:
        fate = self._call_fates.get(event.call_id)
        if fate == _ANSWERED:
            self._reject(event, ErrorCode.DUPLICATE_RESULT, "answers a call that already has one")
        elif fate is not None:
            self._reject(
                event, ErrorCode.LATE_RESULT, f"arrived after the call was {fate}: ignored"
            )
        else:
            self._reject(event, ErrorCode.UNKNOWN_CALL_ID, "answers no call of this session")

    def _offered(self) -> tuple[str, ...]:
        """The tools the model is offered now: a read-only session offers no write tool."""
        if self._mode != ApprovalMode.READ_ONLY:
            return self.config.tools
        return tuple(name for name in self.config.tools if name not in WRITE_TOOL_NAMES)

    def _approval_source(self, ide_name: str, arguments: dict[str, Any]) -> str | None:
        """Why this call may run without asking (None: it needs the user's decision); empty
        for a tool that does not write."""
        if ide_name not in WRITE_TOOL_NAMES:
            return ""
        if self._mode != ApprovalMode.ASK:
            return ApprovalSource.MODE
        paths = written_paths(arguments)
        if ide_name in self._allowed_tools or (
            paths and all((ide_name, path) in self._allowed_paths for path in paths)
        ):
            return ApprovalSource.SESSION
        return None

    def _emit_tool_call(self, call: _StepCall, source: str) -> None:
        """`tool_call`; with the `approvals` feature a write call says why it runs."""
        assert call.ide_name is not None and call.arguments is not None
        self._emit(
            ToolCall(
                session_id=self.session_id,
                seq=self._next_seq(),
                call_id=call.call_id,
                tool=call.ide_name,
                arguments=call.arguments,
                approval=source if source and FEATURE_APPROVALS in self.config.features else None,
            )
        )

    def _emit_decision(self, event: ApprovalAnswered) -> None:
        self._emit(
            ApprovalDecision(
                session_id=self.session_id,
                seq=self._next_seq(),
                turn_id=self._live_turn().turn_id,
                call_id=event.call_id,
                decision=event.decision,
                message=event.message,
            )
        )

    def _rejected_answer(self, event: ApprovalAnswered) -> str:
        message = "The user declined this change."
        if event.message:
            message = f"{message} {event.message}"
        error = {"code": ToolErrorCode.REJECTED_BY_USER, "message": message}
        return self._clip(json.dumps({"error": error}, ensure_ascii=False))

    def _answer_rejected(self, event: ApprovalAnswered) -> None:
        """Answer a call waiting for approval as rejected, its timer cleared; the caller
        emits the decision once every timer of the step is cleared."""
        call = self._live_turn().pending.pop(event.call_id)
        self._out.append(ClearToolTimer(call_id=call.call_id))
        self._call_fates[call.call_id] = _ANSWERED
        call.answer = self._rejected_answer(event)

    def _deliver_queue(self) -> None:
        """The messages queued during the turn join the conversation (a step boundary)."""
        turn = self._live_turn()
        self.messages += [{"role": "user", "content": text} for text in turn.queued]
        turn.queued.clear()

    def _end_turn(self) -> None:
        """The turn is over (not cancelled): messages still queued join the conversation."""
        self._deliver_queue()
        self._turn = None

    def _live_turn(self) -> _Turn:
        assert self._turn is not None, "the table only runs this action during a turn"
        return self._turn

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _emit(self, event: NumberedEvent) -> None:
        self._out.append(EmitEvent(event))

    def _emit_error(
        self, code: str, message: str, source: ErrorSource, call_id: str | None
    ) -> None:
        self._emit(
            Error(
                session_id=self.session_id,
                seq=self._next_seq(),
                code=code,
                message=message,
                source=source,
                fatal=False,
                call_id=call_id,
            )
        )

    def _reject(self, event: Event, code: str, what: str) -> None:
        state = self.state.value
        self._out.append(
            RejectEvent(
                code=code,
                message=f"{event.trigger} {what} (state {state})",
                event_type=event.trigger,
                state=state,
                message_id=getattr(event, "message_id", None),
                call_id=getattr(event, "call_id", None),
            )
        )

    def _clip(self, text: str) -> str:
        limit = self.config.max_tool_output_chars
        if len(text) <= limit:
            return text
        return f"{text[:limit]}\n[truncated: {len(text) - limit} more characters not shown]"

    def _summary_tokens(self, limit: int) -> int:
        """The most a summary may take: `max_tokens`, else a quarter of the prompt limit."""
        return self.config.max_tokens or limit // 4

    def _prompt_limit(self) -> int:
        limit = self.config.prompt_limit
        return limit if self._limit_cap is None else min(limit, self._limit_cap)

    def _start_step(self, view: tuple[dict[str, Any], ...], tokens: int) -> None:
        turn = self._live_turn()
        turn.steps += 1
        turn.request_id = f"{turn.turn_id}.{turn.steps}"
        turn.request_view, turn.request_tokens = view, tokens
        turn.step_text_parts = []
        turn.step_chars = 0
        turn.calls = []
        if self._mode == ApprovalMode.READ_ONLY:
            view = (self._with_read_only_note(view[0]), *view[1:])
        self._out.append(
            StartLlmRequest(
                request_id=turn.request_id,
                messages=view,
                tools=openai_tools(self._offered()),
                max_tokens=self.config.max_tokens or None,
            )
        )

    def _with_read_only_note(self, system: dict[str, Any]) -> dict[str, Any]:
        """The system message with the reason the model has no write tools."""
        hidden = [BY_IDE_NAME[n].llm_name for n in self.config.tools if n in WRITE_TOOL_NAMES]
        note = (
            "The user set this session to read-only: you cannot change the workspace"
            + (f" (the tools {', '.join(hidden)} are not offered)" if hidden else "")
            + ". Read and explain; describe the changes you would make instead of making them."
        )
        return {**system, "content": f"{system['content']}\n\n{note}"}

    def _start_compaction(self, boundary: int, limit: int) -> None:
        turn = self._live_turn()
        self._compaction_attempts += 1
        turn.compacting, turn.compaction_boundary = True, boundary
        turn.summary_parts = []
        turn.step_text_parts = []
        turn.request_id = f"{turn.turn_id}.compact{self._compaction_attempts}"
        messages = compaction_request(self.messages[1:boundary], limit)
        turn.request_view = ()
        turn.request_tokens = sum(message_tokens(m) for m in messages)
        self._out.append(
            StartLlmRequest(
                request_id=turn.request_id,
                messages=messages,
                tools=(),
                max_tokens=self._summary_tokens(limit),
            )
        )

    def _replace_older_part(self, stand_in: dict[str, Any]) -> None:
        turn = self._live_turn()
        self.messages = [self.messages[0], stand_in, *self.messages[turn.compaction_boundary :]]
        turn.compacting, turn.compacted_this_step, turn.force_compaction = False, True, False
        self._anchor = None

    def _drop_older_part(self, why: str) -> None:
        count = self._live_turn().compaction_boundary - 1
        self._replace_older_part(dropped_message(count))
        self._emit_error(
            ErrorCode.COMPACTION_FAILED,
            f"Summarising the earlier conversation failed ({why}); its {count} messages were "
            "dropped to fit the context window.",
            ErrorSource.LLM,
            None,
        )

    def _count_usage(self, prompt_tokens: int, completion_tokens: int, written_chars: int) -> None:
        """Add a response's tokens to the turn's and the session's tallies: what the upstream
        reported, else the request's estimated size and the estimate of what it wrote."""
        turn = self._live_turn()
        out = chars_tokens(written_chars)
        turn.usage.add(prompt_tokens, completion_tokens, turn.request_tokens, out)
        self._usage.add(prompt_tokens, completion_tokens, turn.request_tokens, out)

    def _end_step(self, event: LlmStreamEnded) -> None:
        """A step's response ended: count it, and anchor later sizes on the upstream's count."""
        turn = self._live_turn()
        written = turn.step_chars + sum(
            len(c.model_call.name) + len(c.model_call.arguments) for c in turn.calls
        )
        self._count_usage(event.prompt_tokens, event.completion_tokens, written)
        if event.prompt_tokens:
            self._anchor = Anchor(turn.request_view, event.prompt_tokens)
        turn.compacted_this_step = turn.force_compaction = turn.overflow_retried = False

    def _emit_answer(self, finish_reason: str) -> None:
        """End the turn with `agent_message`: all its text, with the tokens the upstream
        reported for it."""
        turn = self._live_turn()
        self._emit(
            AgentMessage(
                session_id=self.session_id,
                seq=self._next_seq(),
                turn_id=turn.turn_id,
                content="".join(turn.text_parts),
                finish_reason=finish_reason,
                usage=Usage(
                    prompt_tokens=turn.usage.prompt_tokens,
                    completion_tokens=turn.usage.completion_tokens,
                ),
            )
        )
        self._end_turn()

    def _stop_pending_calls(self, fate: str, code: str, why: str) -> None:
        """Answer every pending call with an error and clear its timer; the step is closed."""
        turn = self._live_turn()
        for call in turn.pending.values():
            self._out.append(ClearToolTimer(call_id=call.call_id))
            self._call_fates[call.call_id] = fate
            call.answer = json.dumps({"error": {"code": code, "message": why}})
        turn.pending.clear()
        self._close_step()

    def _open_step(self, event: LlmStreamEnded, *, report_invalid: bool = True) -> _Turn:
        """Append the assistant message of this response; answer its invalid calls."""
        turn = self._live_turn()
        self._end_step(event)
        tool_calls = []
        for call in turn.calls:
            tool_calls.append(
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {
                        "name": _replayable_name(call.model_call.name),
                        "arguments": _replayable_arguments(call.model_call.arguments),
                    },
                }
            )
        self.messages.append(
            {
                "role": "assistant",
                "content": "".join(turn.step_text_parts) or None,
                "tool_calls": tool_calls,
            }
        )
        for call in turn.calls:
            if call.problem is None:
                continue
            call.answer = json.dumps(
                {"error": {"code": ErrorCode.INVALID_TOOL_CALL, "message": call.problem}}
            )
            if report_invalid:
                self._emit_error(
                    ErrorCode.INVALID_TOOL_CALL, call.problem, ErrorSource.LLM, call.call_id
                )
        for call in turn.calls:
            key = _call_key(call.model_call)
            turn.call_key_run = turn.call_key_run + 1 if key == turn.last_call_key else 1
            turn.last_call_key = key
        return turn

    def _close_step(self) -> None:
        """Answer every call of the step in call order: the conversation is whole again."""
        turn = self._live_turn()
        for call in turn.calls:
            self.messages.append(
                {"role": "tool", "tool_call_id": call.call_id, "content": call.answer or ""}
            )
        turn.calls = []

    def _keep_partial_text(self) -> None:
        turn = self._live_turn()
        if turn.step_text_parts:
            self.messages.append({"role": "assistant", "content": "".join(turn.step_text_parts)})

    def _end_turn_with_error(self, code: ErrorCode, message: str) -> None:
        self._emit_error(code, message, ErrorSource.AGENT, None)
        self._end_turn()


def revert_note(turn_id: str, paths: tuple[str, ...]) -> str:
    """The user-role note that keeps the model's picture of the workspace true after an undo."""
    number = turn_id[1:] if turn_id[:1] == "t" and turn_id[1:].isdigit() else None
    when = (
        f"before their request number {number} of this conversation"
        if number
        else (f"before turn {turn_id}")
    )
    listed = ", ".join(paths[:REVERT_NOTE_PATHS]) if paths else "(no files)"
    if len(paths) > REVERT_NOTE_PATHS:
        listed += f" and {len(paths) - REVERT_NOTE_PATHS} more"
    return (
        f"[The user reverted these files to how they were {when}: {listed}. The changes made "
        "to them since are gone from the disk; read them again before relying on their "
        "content or changing them.]"
    )


def replay_inputs(session_id: str, config: CoreConfig, events: list[Event]) -> list[Command]:
    """Feed events into a fresh core and return every command, in order."""
    core = SessionCore(session_id, config)
    out: list[Command] = []
    for event in events:
        out.extend(core.handle(event))
    return out

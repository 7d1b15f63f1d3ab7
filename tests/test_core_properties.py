"""Property-based tests of the session core: arbitrary event sequences keep every promise.

A hypothesis `RuleBasedStateMachine` whose rules are the events (user messages, streamed
text, tool calls valid, broken or repeated, ends, failures, results of pending, answered
or unknown calls, timeouts and cancels, for the current or a stale request) checks after
every event that:

- the state is one of the five, and the state event closes a step that changes it;
- numbered events have seq +1 without gaps; commands come in the documented order;
- a tool call's result (or timeout) is consumed at most once;
- the model is never called while a tool result is pending;
- after a cancel, no command concerns the cancelled turn (but the user may revert its files);
- a rejected event is the only command and leaves the observable state unchanged;
- turn, request and call ids are never reused;
- every conversation sent to the model, and the conversation at rest, is OpenAI-valid;
- with a context budget (half of the examples, with a window a few files fill): every step
  request is reported by a `context` event and is under the prompt limit by the estimate,
  unless nothing is left to elide or compact; a compaction keeps the current turn's newest
  user message verbatim and leaves no tool call unanswered;
- approvals (sessions start in any mode the IDE's features allow, and change it): no write
  `tool_call` goes out in `ask` without the user's allow of that call or a rule the user set
  (`tool_call.approval` says which); `auto-edit` never asks; `read-only` never offers a write
  tool, tells the model why, and never sends a write call; a rejection reaches the model as
  the call's `rejected_by_user` result;
- steering: a queued message joins the conversation of the turn's next step request, after
  the step's tool results, and never after a cancel; a revert's note ends the conversation;

and at the end of every example replays its events into a fresh core: the same events
give identical commands (determinism).

Budget, from `orchestrator.statedoc` so that docs/state-machine.md states what runs: 300
examples of up to 40 rules each (a rule fires one event, or the three of a model response);
every example starts a turn, and rules that move a turn on keep sessions deep enough to
reach tool steps, the step cap and stuck calls. Measured: about 10,000 events per run (each
also replayed), about 10 s on a 2-core machine (the stateful test alone about 7 s).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
    compaction_boundary,
    elision_marker,
    latest_step_start,
    worth_compacting,
)
from orchestrator.core import CoreConfig, SessionCore, replay_inputs
from orchestrator.events import (
    ApprovalAnswered,
    ApprovalModeSet,
    CancelRequested,
    Event,
    FilesRevertedByUser,
    LlmFailed,
    LlmStreamEnded,
    LlmTextDelta,
    LlmToolCallsCompleted,
    ModelToolCall,
    ToolResultReceived,
    ToolTimedOut,
    TurnDeadlineReached,
    UserMessageReceived,
)
from orchestrator.statedoc import PROPERTY_EXAMPLES, PROPERTY_STEPS
from orchestrator.table import AT_REST, STATES
from tests.support.core_views import observe
from tests.support.openai_conversation import (
    assert_openai_conversation,
    assert_request_conversation,
)
from wire import (
    WRITE_TOOL_NAMES,
    AgentDelta,
    AgentMessage,
    ApprovalDecision,
    ApprovalModeChanged,
    ApprovalRequest,
    ContextReport,
    Error,
    ErrorCode,
    ErrorSource,
    FilesRevertedEvent,
    SessionState,
    StateChanged,
    ToolCall,
    UserMessageQueued,
    written_paths,
)

SESSION = "s_prop"
MAX_MESSAGE_CHARS = 24
# The system prompt and the tool schemas take about 600 tokens: a few files fill the rest.
BUDGET = CoreConfig(
    context_window=1000,
    max_tokens=100,
    max_turn_output_tokens=4,
    turn_deadline_s=60.0,
)

# ---- strategies -------------------------------------------------------------------------

PATHS = st.sampled_from(["a.py", "b.py"])
VALID_CALLS = st.one_of(
    st.builds(lambda p: ("read_file", json.dumps({"path": p})), PATHS),
    st.builds(lambda p: ("write_file", json.dumps({"path": p, "content": "x"})), PATHS),
    st.just(("git_diff", "")),
    st.just(("apply_patch", json.dumps({"diff": "--- a/a.py\n+++ b/a.py"}))),
)
BROKEN_CALLS = st.sampled_from(
    [
        ("read_file", '{"path": '),
        ("read_file", json.dumps({"file": "a.py"})),
        ("write_file", "[1, 2]"),
        ("delete_file", json.dumps({"path": "a.py"})),
        ("git.diff", "{}"),
        ("", ""),
    ]
)
CALLS = st.lists(
    st.one_of(VALID_CALLS, VALID_CALLS, BROKEN_CALLS).map(
        lambda c: ModelToolCall(id="model-call", name=c[0], arguments=c[1])
    ),
    max_size=3,
)
# Most LLM events belong to the current request, so that turns get deep.
WHICH_REQUEST = st.sampled_from(["current", "current", "current", "earlier", "unknown"])
# Failures end turns: mostly stale ones, so that turns still get deep.
WHICH_FAILING_REQUEST = st.sampled_from(["current", "earlier", "unknown"])
WHICH_CALL = st.sampled_from(["pending", "pending", "pending", "sent", "unknown"])
WHICH_DECIDED_CALL = st.sampled_from(
    ["awaiting", "awaiting", "awaiting", "pending", "sent", "unknown"]
)
DECISIONS = st.sampled_from(["allow_once", "allow_tool", "allow_path", "reject", "reject"])
MODES = st.sampled_from(["ask", "auto-edit", "read-only"])
WRITE_LLM_NAMES = {"write_file", "apply_patch"}
RULES = ("allow_tool", "allow_path")
MESSAGE_IDS = st.none() | st.sampled_from(["m1", "m2"])
TEXT = st.text(max_size=8)
JSON_OUTPUT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def rank(command: Command) -> int:
    """The place of a command in a step, as docs/state-machine.md documents it."""
    if isinstance(command, ClearToolTimer | AbortLlmRequest):
        return 0
    if isinstance(command, EmitEvent) and isinstance(command.event, ContextReport):
        return 6
    if isinstance(command, EmitEvent):
        event = command.event
        if isinstance(event, Error):
            return 2 if event.source == ErrorSource.AGENT else 1
        if isinstance(event, ApprovalDecision):
            return 1
        if isinstance(event, AgentDelta | AgentMessage):
            return 3
        if isinstance(event, ToolCall | ApprovalRequest):
            return 4
        return 7
    if isinstance(command, StartToolTimer | StartTurnTimer):
        return 5
    if isinstance(command, StartLlmRequest):
        return 6
    raise AssertionError(f"unexpected command {command}")


class SessionCoreMachine(RuleBasedStateMachine):
    """Random event sequences against one core, with the protocol's promises as invariants."""

    core: SessionCore

    @initialize(
        max_steps=st.integers(min_value=1, max_value=5),
        first=st.text(max_size=8),
        budget=st.booleans(),
        approvals=st.booleans(),
        steering=st.booleans(),
        mode=MODES,
    )
    def open_session(
        self,
        max_steps: int,
        first: str,
        budget: bool,
        approvals: bool,
        steering: bool,
        mode: str,
    ) -> None:
        """A fresh session whose first turn has started (an idle one is in the table tests),
        in an approval mode its IDE's features allow."""
        features = (("approvals",) if approvals else ()) + (("steering",) if steering else ())
        self.mode = "auto-edit" if mode == "ask" and not approvals else mode
        self.config = CoreConfig(
            approval=self.mode,
            features=features,
            max_steps=max_steps,
            max_user_message_chars=MAX_MESSAGE_CHARS,
            context_window=BUDGET.context_window if budget else 0,
            max_tokens=BUDGET.max_tokens if budget else 0,
            max_turn_output_tokens=BUDGET.max_turn_output_tokens if budget else 0,
            turn_deadline_s=BUDGET.turn_deadline_s if budget else 0.0,
        )
        self.turn_content: str | None = None
        self.core = SessionCore(SESSION, self.config)
        self.events: list[Event] = []
        self.commands: list[Command] = []
        self.requests: list[str] = []
        self.turns: set[str] = set()
        self.sent_calls: list[str] = []
        self.outstanding: set[str] = set()
        self.consumed: set[str] = set()
        self.cancelled_turns: set[str] = set()
        self.cancelled_requests: set[str] = set()
        self.cancelled_calls: set[str] = set()
        self.last_calls: list[ModelToolCall] = []
        self.awaiting: dict[str, ApprovalRequest] = {}
        self.allowed_tools: set[str] = set()
        self.allowed_paths: set[tuple[str, str]] = set()
        self.rejected: dict[str, str | None] = {}
        self.queued: list[str] = []
        self.dropped: set[str] = set()
        self.steers = 0
        self.turn_steers: list[str] = []
        self.fire(UserMessageReceived(first))

    # ---- id choices ---------------------------------------------------------------------

    def request_id(self, data: st.DataObject, which: str) -> str:
        earlier = [r for r in self.requests if r != self.core.current_request_id]
        if which == "current" and self.core.current_request_id is not None:
            return self.core.current_request_id
        if which in ("current", "earlier") and earlier:
            return data.draw(st.sampled_from(earlier))
        return "t99.1"

    def call_id(self, data: st.DataObject, which: str) -> str:
        if which == "pending" and self.core.pending_call_ids:
            return data.draw(st.sampled_from(self.core.pending_call_ids))
        if which in ("pending", "sent") and self.sent_calls:
            return data.draw(st.sampled_from(self.sent_calls))
        return "c999"

    # ---- rules: one per event type ------------------------------------------------------

    @rule(content=st.text(max_size=MAX_MESSAGE_CHARS + 4), message_id=MESSAGE_IDS)
    def user_message(self, content: str, message_id: str | None) -> None:
        self.fire(UserMessageReceived(content, message_id))

    @rule(data=st.data(), which=WHICH_REQUEST, text=TEXT)
    def llm_delta(self, data: st.DataObject, which: str, text: str) -> None:
        self.fire(LlmTextDelta(self.request_id(data, which), text))

    @rule(data=st.data(), which=WHICH_REQUEST, calls=CALLS)
    def llm_tool_calls(self, data: st.DataObject, which: str, calls: list[ModelToolCall]) -> None:
        self.fire(LlmToolCallsCompleted(self.request_id(data, which), tuple(calls)))

    @rule(data=st.data(), which=WHICH_REQUEST, finish=st.sampled_from(["stop", "tool_calls"]))
    def llm_end(self, data: st.DataObject, which: str, finish: str) -> None:
        self.fire(LlmStreamEnded(self.request_id(data, which), finish, 3, 2))

    @rule(
        data=st.data(),
        which=WHICH_FAILING_REQUEST,
        code=st.sampled_from(["llm_timeout", "llm_auth"]),
    )
    def llm_failed(self, data: st.DataObject, which: str, code: str) -> None:
        self.fire(LlmFailed(self.request_id(data, which), code, "upstream said no"))

    @rule(data=st.data(), which=WHICH_CALL, succeeded=st.booleans(), output=JSON_OUTPUT)
    def tool_result(self, data: st.DataObject, which: str, succeeded: bool, output: Any) -> None:
        call_id = self.call_id(data, which)
        if succeeded:
            self.fire(ToolResultReceived(call_id, True, output))
        else:
            self.fire(ToolResultReceived(call_id, False, None, "not_found", "no such file"))

    @rule(data=st.data(), which=WHICH_CALL)
    def tool_timeout(self, data: st.DataObject, which: str) -> None:
        self.fire(ToolTimedOut(self.call_id(data, which)))

    @rule(message_id=MESSAGE_IDS)
    def cancel(self, message_id: str | None) -> None:
        self.fire(CancelRequested(message_id))

    @rule(
        data=st.data(),
        which=WHICH_DECIDED_CALL,
        decision=DECISIONS,
        end_turn=st.booleans(),
        message=st.none() | st.just("not like that"),
    )
    def approval(
        self, data: st.DataObject, which: str, decision: str, end_turn: bool, message: str | None
    ) -> None:
        awaiting = self.core.calls_awaiting_approval
        if which == "awaiting" and awaiting:
            call_id = data.draw(st.sampled_from(awaiting))
        else:
            call_id = self.call_id(data, which)
        self.fire(ApprovalAnswered(call_id, decision, message, end_turn and decision == "reject"))

    @rule(mode=MODES, message_id=MESSAGE_IDS)
    def set_approval(self, mode: str, message_id: str | None) -> None:
        self.fire(ApprovalModeSet(mode, message_id))

    @rule(paths=st.lists(PATHS, max_size=2, unique=True), message_id=MESSAGE_IDS)
    def files_reverted(self, paths: list[str], message_id: str | None) -> None:
        self.fire(FilesRevertedByUser("t1", tuple(paths), message_id))

    @precondition(
        lambda self: self.core.state in (SessionState.STREAMING, SessionState.AWAITING_TOOL)
    )
    @rule()
    def user_steers(self) -> None:
        self.steers += 1
        self.fire(UserMessageReceived(f"steer {self.steers}"))

    @rule(current=st.booleans())
    def turn_deadline(self, current: bool) -> None:
        turn = self.core.turn_id if current and self.core.turn_id else "t99"
        self.fire(TurnDeadlineReached(turn))

    @precondition(lambda self: self.core.state == SessionState.STREAMING)
    @rule()
    def upstream_says_too_long(self) -> None:
        request = self.core.current_request_id
        assert request is not None
        self.fire(LlmFailed(request, ErrorCode.LLM_CONTEXT_EXCEEDED, "maximum context length"))

    @precondition(lambda self: self.core.state == SessionState.AWAITING_TOOL)
    @rule(data=st.data(), size=st.integers(min_value=0, max_value=900))
    def ide_returns_a_file(self, data: st.DataObject, size: int) -> None:
        call_id = data.draw(st.sampled_from(self.core.pending_call_ids))
        self.fire(ToolResultReceived(call_id, True, {"content": "y" * size}))

    # ---- rules that move a turn on (random events alone rarely get deep) ----------------

    @precondition(lambda self: self.core.state in AT_REST)
    @rule(content=st.text(max_size=MAX_MESSAGE_CHARS))
    def user_writes(self, content: str) -> None:
        self.fire(UserMessageReceived(content))

    @precondition(lambda self: self.core.state == SessionState.STREAMING)
    @rule(text=TEXT)
    def model_answers_with_text(self, text: str) -> None:
        self.model_responds(text, [])

    @precondition(lambda self: self.core.state == SessionState.STREAMING)
    @rule(text=TEXT, calls=CALLS.filter(bool))
    def model_calls_tools(self, text: str, calls: list[ModelToolCall]) -> None:
        self.model_responds(text, calls)

    @precondition(lambda self: self.core.state == SessionState.STREAMING and self.last_calls)
    @rule()
    def model_repeats_its_last_calls(self) -> None:
        self.model_responds("", self.last_calls)

    @precondition(lambda self: self.core.state == SessionState.AWAITING_TOOL)
    @rule(data=st.data(), output=JSON_OUTPUT)
    def ide_answers(self, data: st.DataObject, output: Any) -> None:
        call_id = data.draw(st.sampled_from(self.core.pending_call_ids))
        self.fire(ToolResultReceived(call_id, True, output))

    @precondition(lambda self: self.core.calls_awaiting_approval)
    @rule(data=st.data(), decision=DECISIONS)
    def user_decides(self, data: st.DataObject, decision: str) -> None:
        call_id = data.draw(st.sampled_from(self.core.calls_awaiting_approval))
        self.fire(ApprovalAnswered(call_id, decision, "try another way"))

    @precondition(lambda self: self.core.state == SessionState.AWAITING_TOOL)
    @rule(data=st.data())
    def ide_reports_failure(self, data: st.DataObject) -> None:
        call_id = data.draw(st.sampled_from(self.core.pending_call_ids))
        self.fire(ToolResultReceived(call_id, False, None, "patch_failed", "hunk 1 failed"))

    def model_responds(self, text: str, calls: list[ModelToolCall]) -> None:
        """The current request streams text, then these calls, then ends."""
        request = self.core.current_request_id
        assert request is not None
        self.last_calls = calls
        self.fire(LlmTextDelta(request, text))
        if calls:
            self.fire(LlmToolCallsCompleted(request, tuple(calls)))
        self.fire(LlmStreamEnded(request, "tool_calls" if calls else "stop", 7, 3))

    # ---- one event, checked -------------------------------------------------------------

    def fire(self, event: Event) -> None:
        before = observe(self.core)
        rest_before = list(self.core.messages)
        commands = self.core.handle(event)
        self.events.append(event)
        self.commands += commands
        if any(isinstance(c, RejectEvent) for c in commands):
            self.check_rejection(event, before.state, commands)
            assert observe(self.core) == before
            return
        self.check_numbering(before.last_seq, commands)
        self.check_order_and_state_event(before.state, commands)
        self.check_tool_results(event)
        self.check_approvals(event, commands)
        self.check_steering(event, commands)
        self.check_ids(before.turn_id, commands)
        self.check_budget(event, rest_before, commands)
        ends_turn = isinstance(event, ApprovalAnswered) and event.end_turn
        if isinstance(event, CancelRequested | TurnDeadlineReached) or ends_turn:
            self.remember_cancelled(before.turn_id, before.current_request_id)
        else:
            self.check_nothing_concerns_cancelled_turns(commands)

    def check_rejection(self, event: Event, state: SessionState, commands: list[Command]) -> None:
        (rejection,) = commands
        assert isinstance(rejection, RejectEvent)
        assert (rejection.event_type, rejection.state) == (event.trigger, state.value)

    def check_numbering(self, last_seq: int, commands: list[Command]) -> None:
        seqs = [c.event.seq for c in commands if isinstance(c, EmitEvent)]
        assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))
        assert self.core.last_seq == last_seq + len(seqs)
        assert all(c.event.session_id == SESSION for c in commands if isinstance(c, EmitEvent))

    def check_order_and_state_event(self, previous: SessionState, commands: list[Command]) -> None:
        ranks = [rank(c) for c in commands]
        assert ranks == sorted(ranks), commands
        states = [c.event for c in commands if isinstance(c, EmitEvent)]
        moves = [e for e in states if isinstance(e, StateChanged)]
        if self.core.state == previous:
            assert not moves
        else:
            assert len(moves) == 1 and commands[-1] == EmitEvent(moves[0])
            assert (moves[0].previous, moves[0].state) == (previous, self.core.state)
        dispatched = [e.call_id for e in states if isinstance(e, ToolCall | ApprovalRequest)]
        timers = [c.call_id for c in commands if isinstance(c, StartToolTimer)]
        assert dispatched == timers

    def check_ids(self, turn_before: str | None, commands: list[Command]) -> None:
        turn = self.core.turn_id
        if turn is not None and turn != turn_before:
            assert turn not in self.turns, f"turn id {turn} reused"
            self.turns.add(turn)
        for command in commands:
            if isinstance(command, StartLlmRequest):
                assert command.request_id not in self.requests, "request id reused"
                assert not self.outstanding and not self.core.pending_call_ids
                assert_request_conversation(command.messages)
                self.requests.append(command.request_id)
            elif isinstance(command, EmitEvent) and isinstance(
                command.event, ToolCall | ApprovalRequest
            ):
                call_id = command.event.call_id
                allowed = isinstance(command.event, ToolCall) and call_id in self.outstanding
                if not allowed:
                    assert call_id not in self.sent_calls, "call id reused"
                    self.sent_calls.append(call_id)
                    self.outstanding.add(call_id)
            elif isinstance(command, EmitEvent) and isinstance(
                command.event, AgentDelta | AgentMessage
            ):
                assert command.event.turn_id == turn_before

    def check_budget(
        self, event: Event, messages_before: list[dict[str, Any]], commands: list[Command]
    ) -> None:
        if isinstance(event, UserMessageReceived) and not any(
            isinstance(c, EmitEvent) and isinstance(c.event, UserMessageQueued) for c in commands
        ):
            self.turn_content = event.content
            self.turn_steers = []
        steps = [c for c in commands if isinstance(c, StartLlmRequest) and c.tools]
        reports = [
            c.event
            for c in commands
            if isinstance(c, EmitEvent) and isinstance(c.event, ContextReport)
        ]
        if not self.config.context_window:
            assert not reports
            return
        assert len(reports) == len(steps) <= 1
        if not steps:
            return
        (request,), (report,) = steps, reports
        assert report.window == self.config.context_window
        if report.tokens > self.config.prompt_limit:
            assert nothing_left_to_shrink(request.messages, report.compacted)
        if report.compacted:
            users = [m for m in request.messages if m["role"] == "user"]
            assert users[-1]["content"] in (self.turn_content, *self.turn_steers)
            assert len(request.messages) <= len(messages_before) + 2

    def check_tool_results(self, event: Event) -> None:
        rejection = isinstance(event, ApprovalAnswered) and event.decision == "reject"
        if isinstance(event, ToolResultReceived | ToolTimedOut) or rejection:
            assert event.call_id in self.outstanding, "a result for no outstanding call"
            assert event.call_id not in self.consumed, "a result consumed twice"
            self.consumed.add(event.call_id)
            self.outstanding.discard(event.call_id)
        if isinstance(event, ToolResultReceived):
            assert event.call_id not in self.awaiting, "a result of a call nobody allowed"
        if isinstance(event, ToolTimedOut) or rejection:
            self.awaiting.pop(event.call_id, None)

    def check_approvals(self, event: Event, commands: list[Command]) -> None:
        """The promises of the approval modes, against a model of the user's rules."""
        emitted = [c.event for c in commands if isinstance(c, EmitEvent)]
        if isinstance(event, ApprovalModeSet):
            assert emitted == [
                ApprovalModeChanged(session_id=SESSION, seq=self.core.last_seq, mode=event.mode)
            ]
            self.mode = event.mode
        if isinstance(event, ApprovalAnswered):
            assert self.mode != "read-only" or event.decision == "reject"
            (decision,) = [e for e in emitted if isinstance(e, ApprovalDecision)]
            assert (decision.call_id, decision.decision) == (event.call_id, event.decision)
            if event.decision == "reject":
                self.rejected[event.call_id] = event.message
        allowed_now = {
            e.call_id for e in emitted if isinstance(e, ApprovalDecision) and e.decision != "reject"
        }
        for frame in emitted:
            if isinstance(frame, ApprovalDecision) and frame.decision in RULES:
                request = self.awaiting[frame.call_id]
                if frame.decision == "allow_tool":
                    self.allowed_tools.add(request.tool)
                else:
                    self.allowed_paths |= {
                        (request.tool, p) for p in written_paths(request.arguments)
                    }
            if isinstance(frame, ApprovalRequest):
                assert self.mode == "ask" and frame.tool in WRITE_TOOL_NAMES
                assert not self.covered(frame.tool, frame.arguments)
                self.awaiting[frame.call_id] = frame
            elif isinstance(frame, ToolCall):
                self.check_tool_call(frame, allowed_now)
        for command in commands:
            if isinstance(command, StartLlmRequest) and command.tools:
                offered = {tool["function"]["name"] for tool in command.tools}
                read_only = self.mode == "read-only"
                assert not (read_only and offered & WRITE_LLM_NAMES), "read-only offered a write"
                assert ("read-only" in command.messages[0]["content"]) is read_only
        for message in self.core.messages:
            if message["role"] == "tool" and message["tool_call_id"] in self.rejected:
                error = json.loads(message["content"])["error"]
                assert error["code"] == "rejected_by_user"
                assert error["message"].startswith("The user declined this change.")
                reason = self.rejected[message["tool_call_id"]]
                assert reason is None or error["message"].endswith(reason)

    def check_tool_call(self, frame: ToolCall, allowed_now: set[str]) -> None:
        source = frame.approval
        if frame.tool not in WRITE_TOOL_NAMES:
            assert source is None
            return
        features = self.config.features
        if frame.call_id in allowed_now:
            request = self.awaiting.pop(frame.call_id)
            assert request.arguments == frame.arguments
            decision = "user"
        else:
            assert self.mode != "read-only", "read-only sent a write call"
            assert frame.call_id not in self.awaiting
            if self.mode == "ask":
                assert self.covered(frame.tool, frame.arguments), "a write call nobody allowed"
                decision = "session"
            else:
                decision = "mode"
        assert source == (decision if "approvals" in features else None)

    def covered(self, tool: str, arguments: dict[str, Any]) -> bool:
        paths = written_paths(arguments)
        return tool in self.allowed_tools or bool(
            paths and all((tool, path) in self.allowed_paths for path in paths)
        )

    def check_steering(self, event: Event, commands: list[Command]) -> None:
        emitted = [c.event for c in commands if isinstance(c, EmitEvent)]
        for frame in emitted:
            if isinstance(frame, UserMessageQueued):
                assert isinstance(event, UserMessageReceived) and "steering" in self.config.features
                assert frame.text == event.content
                self.queued.append(frame.text)
                self.turn_steers.append(frame.text)
            elif isinstance(frame, FilesRevertedEvent):
                assert isinstance(event, FilesRevertedByUser)
                note = self.core.messages[-1]
                assert note["role"] == "user" and all(p in note["content"] for p in event.paths)
        if isinstance(event, CancelRequested):
            self.dropped |= {text for text in self.queued if text.startswith("steer ")}
            self.queued = []
        steps = [c for c in commands if isinstance(c, StartLlmRequest) and c.tools]
        for request in steps:
            said = [m["content"] for m in request.messages if m["role"] == "user"]
            reports = [e for e in emitted if isinstance(e, ContextReport)]
            if not (reports and reports[0].compacted):
                assert all(text in said for text in self.queued), "a queued message was lost"
            assert not self.dropped & set(said), "a message dropped by cancel reached the model"
        if steps or self.core.turn_id is None:
            self.queued = []

    def remember_cancelled(self, turn_id: str | None, request_id: str | None) -> None:
        assert turn_id is not None and request_id is not None
        self.cancelled_turns.add(turn_id)
        self.cancelled_requests.add(request_id)
        self.cancelled_calls |= self.outstanding
        self.outstanding.clear()

    def check_nothing_concerns_cancelled_turns(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, StartLlmRequest | AbortLlmRequest):
                assert command.request_id not in self.cancelled_requests, command
                assert self.core.turn_id not in self.cancelled_turns, command
            elif isinstance(command, StartToolTimer | ClearToolTimer):
                assert command.call_id not in self.cancelled_calls, command
            elif isinstance(command, EmitEvent) and not isinstance(
                command.event, FilesRevertedEvent
            ):
                event = command.event
                assert getattr(event, "turn_id", None) not in self.cancelled_turns, command
                call_id = getattr(event, "call_id", None)
                assert call_id is None or call_id not in self.cancelled_calls, command

    # ---- invariants ---------------------------------------------------------------------

    @invariant()
    def state_is_one_of_the_five(self) -> None:
        assert self.core.state in STATES

    @invariant()
    def session_at_rest_has_a_whole_conversation(self) -> None:
        if self.core.state in AT_REST:
            assert (self.core.turn_id, self.core.current_request_id) == (None, None)
            assert not self.core.pending_call_ids and not self.outstanding
            assert_openai_conversation(self.core.messages)

    @invariant()
    def pending_calls_are_the_outstanding_ones(self) -> None:
        assert set(self.core.pending_call_ids) == self.outstanding
        awaiting = self.core.state == SessionState.AWAITING_TOOL
        assert bool(self.outstanding) is awaiting

    @invariant()
    def every_tool_call_is_answered_once_in_the_conversation(self) -> None:
        answered = [m["tool_call_id"] for m in self.core.messages if m["role"] == "tool"]
        assert len(answered) == len(set(answered))
        assert not self.outstanding & set(answered)

    def teardown(self) -> None:
        if self.events:
            assert replay_inputs(SESSION, self.config, self.events) == self.commands


def nothing_left_to_shrink(messages: tuple[dict[str, Any], ...], compacted: bool) -> bool:
    """Every tool output before the newest step is elided, and compaction cannot help."""
    names = {
        call["id"]: (call["function"]["name"], call["function"]["arguments"])
        for message in messages
        for call in message.get("tool_calls") or ()
    }
    for message in messages[: latest_step_start(messages)]:
        if message["role"] == "tool" and not message["content"].startswith("[output elided"):
            name, arguments = names[message["tool_call_id"]]
            if len(elision_marker(name, arguments, len(message["content"]))) < len(
                message["content"]
            ):
                return False
    boundary = compaction_boundary(messages)
    return compacted or not worth_compacting(messages, boundary, BUDGET.max_tokens)


SessionCoreMachine.TestCase.settings = settings(
    max_examples=PROPERTY_EXAMPLES,
    stateful_step_count=PROPERTY_STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_core_keeps_its_promises_when_events_arrive_in_any_order = SessionCoreMachine.TestCase


# ---- determinism over arbitrary ids -----------------------------------------------------

REQUESTS = st.sampled_from(["t1.1", "t1.2", "t2.1", "t2.2"])
CALL_IDS = st.sampled_from(["c1", "c2", "c3", "c4"])
ANY_EVENT = st.one_of(
    st.builds(UserMessageReceived, st.text(max_size=4), MESSAGE_IDS),
    st.builds(LlmTextDelta, REQUESTS, TEXT),
    st.builds(LlmToolCallsCompleted, REQUESTS, CALLS.map(tuple)),
    st.builds(LlmStreamEnded, REQUESTS, st.just("stop")),
    st.builds(LlmFailed, REQUESTS, st.just("llm_timeout"), st.just("timed out")),
    st.builds(ToolResultReceived, CALL_IDS, st.booleans(), JSON_OUTPUT),
    st.builds(ToolTimedOut, CALL_IDS),
    st.builds(CancelRequested, MESSAGE_IDS),
)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(ANY_EVENT, max_size=30))
def test_core_gives_identical_commands_when_same_events_are_fed_twice(events: list[Event]) -> None:
    config = CoreConfig(max_steps=3)

    first = replay_inputs(SESSION, config, events)
    second = replay_inputs(SESSION, config, events)

    assert first == second
    assert [repr(c) for c in first] == [repr(c) for c in second]

"""Every (state, event) pair of the session core is decided, and the core keeps its promises.

As in h2's state machine tests, every state is reached by a legal event path and every
kind of event is fired there, with its variants: the last or another LLM request; a
pending, answered, cancelled or unknown call. Each pair is either a legal move with the
commands listed in `LEGAL_MOVES`, or a rejection: one `RejectEvent` naming the event and
the state, the whole observable state unchanged (re-asserted as h11's tests do), and a
core that then behaves exactly like one that never saw the event.

The behaviour tests below the table follow the protocol: cancel, busy, parallel calls,
timeouts, limits, broken tool calls and model failures. Each ends with a conversation
that the OpenAI API accepts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from orchestrator.commands import (
    AbortLlmRequest,
    ClearToolTimer,
    Command,
    EmitEvent,
    RejectEvent,
    StartLlmRequest,
    StartToolTimer,
)
from orchestrator.core import CoreConfig, SessionCore
from orchestrator.events import (
    EVENT_TYPES,
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
from orchestrator.table import IN_TURN, STATES, TRANSITIONS
from tests.support.core_views import emitted, observe, only_rejection, shapes
from tests.support.openai_conversation import (
    assert_openai_conversation,
    assert_request_conversation,
)
from wire import (
    AgentMessage,
    Error,
    ErrorCode,
    ErrorSource,
    SessionState,
    StateChanged,
    ToolCall,
)

IDLE = SessionState.IDLE
STREAMING = SessionState.STREAMING
AWAITING_TOOL = SessionState.AWAITING_TOOL
ERROR = SessionState.ERROR
DONE = SessionState.DONE

SESSION = "s_test"
LIMITS = CoreConfig(max_steps=4, max_user_message_chars=100)
ASKING = replace(LIMITS, approval="ask", features=("approvals", "steering"))
"""An IDE that answers approvals and steers: write calls wait for the user, messages queue."""


# ---- events, briefly --------------------------------------------------------------------


def user(content: str = "Fix the bug", message_id: str | None = "m1") -> UserMessageReceived:
    return UserMessageReceived(content, message_id)


def call(name: str, arguments: Any) -> ModelToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ModelToolCall(id=f"model-{name}", name=name, arguments=text)


def read(path: str) -> ModelToolCall:
    return call("read_file", {"path": path})


def write(path: str, content: str = "new text") -> ModelToolCall:
    return call("write_file", {"path": path, "content": content})


def decide(
    call_id: str, decision: str, message: str | None = None, end_turn: bool = False
) -> ApprovalAnswered:
    return ApprovalAnswered(call_id, decision, message, end_turn, "m7")


def tool_calls(request_id: str, *calls: ModelToolCall) -> LlmToolCallsCompleted:
    return LlmToolCallsCompleted(request_id, calls)


def end(request_id: str, finish_reason: str = "tool_calls") -> LlmStreamEnded:
    return LlmStreamEnded(request_id, finish_reason, 10, 5)


def ok(call_id: str, content: str = "file text") -> ToolResultReceived:
    return ToolResultReceived(call_id, True, {"content": content})


def failed_tool(call_id: str) -> ToolResultReceived:
    return ToolResultReceived(call_id, False, None, "not_found", "no such file")


def llm_failure(request_id: str) -> LlmFailed:
    return LlmFailed(request_id, ErrorCode.LLM_UNAVAILABLE, "upstream closed the connection")


# ---- the exhaustive table ---------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A legal event path to a state, and the ids it leaves behind."""

    name: str
    state: SessionState
    events: tuple[Event, ...]
    requests: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    answered: str | None = None
    cancelled: str | None = None
    config: CoreConfig = LIMITS
    awaiting: tuple[str, ...] = ()


ONE_CALL_STEP = (user(), tool_calls("t1.1", read("a")), end("t1.1"), ok("c1"))
TWO_CALLS_STEP = (user(), tool_calls("t1.1", read("a"), read("b")), end("t1.1"))
WRITE_AND_READ_STEP = (user(), tool_calls("t1.1", write("a"), read("b")), end("t1.1"))

PATHS = (
    Path("new session", IDLE, ()),
    Path(
        "cancelled while awaiting tools",
        IDLE,
        (*TWO_CALLS_STEP, ok("c1"), CancelRequested()),
        requests=("t1.1",),
        answered="c1",
        cancelled="c2",
    ),
    Path("first step", STREAMING, (user(),), requests=("t1.1",)),
    Path(
        "step after tool results",
        STREAMING,
        ONE_CALL_STEP,
        requests=("t1.1", "t1.2"),
        answered="c1",
    ),
    Path(
        "two calls pending", AWAITING_TOOL, TWO_CALLS_STEP, requests=("t1.1",), pending=("c1", "c2")
    ),
    Path(
        "one call pending",
        AWAITING_TOOL,
        (*TWO_CALLS_STEP, ok("c2")),
        requests=("t1.1",),
        pending=("c1",),
        answered="c2",
    ),
    Path(
        "model failed",
        ERROR,
        (user(), LlmTextDelta("t1.1", "Half"), llm_failure("t1.1")),
        requests=("t1.1",),
    ),
    Path(
        "step cap reached",
        ERROR,
        ONE_CALL_STEP,
        requests=("t1.1",),
        answered="c1",
        config=replace(LIMITS, max_steps=1),
    ),
    Path(
        "same call three times",
        ERROR,
        (
            *ONE_CALL_STEP,
            *(tool_calls("t1.2", read("a")), end("t1.2"), ok("c2")),
            *(tool_calls("t1.3", read("a")), end("t1.3")),
        ),
        requests=("t1.1", "t1.2", "t1.3"),
        answered="c2",
    ),
    Path(
        "answered",
        DONE,
        (user(), LlmTextDelta("t1.1", "Hi"), end("t1.1", "stop")),
        requests=("t1.1",),
    ),
    Path("steering, first step", STREAMING, (user(),), requests=("t1.1",), config=ASKING),
    Path(
        "a write waits for approval",
        AWAITING_TOOL,
        (user(), tool_calls("t1.1", write("a")), end("t1.1")),
        requests=("t1.1",),
        pending=("c1",),
        awaiting=("c1",),
        config=ASKING,
    ),
    Path(
        "a write waits for approval, a read is running",
        AWAITING_TOOL,
        WRITE_AND_READ_STEP,
        requests=("t1.1",),
        pending=("c1", "c2"),
        awaiting=("c1",),
        config=ASKING,
    ),
    Path(
        "a write waits for approval in a session made read-only",
        AWAITING_TOOL,
        (*WRITE_AND_READ_STEP, ok("c2"), ApprovalModeSet("read-only")),
        requests=("t1.1",),
        pending=("c1",),
        awaiting=("c1",),
        answered="c2",
        config=ASKING,
    ),
    Path(
        "a write allowed and running",
        AWAITING_TOOL,
        (*WRITE_AND_READ_STEP, ok("c2"), decide("c1", "allow_once")),
        requests=("t1.1",),
        pending=("c1",),
        answered="c2",
        config=ASKING,
    ),
)


def _last(path: Path) -> str | None:
    return path.requests[-1] if path.requests else None


def _another(path: Path) -> str:
    """An earlier request of the path, or one never made."""
    return path.requests[-2] if len(path.requests) >= 2 else "t9.9"


def _first_pending(path: Path) -> str | None:
    return path.pending[0] if path.pending else None


def _first_awaiting(path: Path) -> str | None:
    return path.awaiting[0] if path.awaiting else None


def _with(value: str | None, make: Callable[[str], Event]) -> Event | None:
    return None if value is None else make(value)


VARIANTS: dict[str, Callable[[Path], Event | None]] = {
    "user_message": lambda p: user("Next, please", "m9"),
    "user_message over the size limit": lambda p: user("x" * 101, "m9"),
    "llm_delta of the last request": lambda p: _with(_last(p), lambda r: LlmTextDelta(r, "more")),
    "llm_delta of another request": lambda p: LlmTextDelta(_another(p), "more"),
    "llm_tool_calls of the last request": lambda p: _with(
        _last(p), lambda r: tool_calls(r, read("z"))
    ),
    "llm_tool_calls of another request": lambda p: tool_calls(_another(p), read("z")),
    "llm_end of the last request": lambda p: _with(_last(p), lambda r: end(r, "stop")),
    "llm_end of another request": lambda p: end(_another(p), "stop"),
    "llm_failed of the last request": lambda p: _with(_last(p), llm_failure),
    "llm_failed of another request": lambda p: llm_failure(_another(p)),
    "tool_result of a pending call": lambda p: _with(_first_pending(p), ok),
    "failed tool_result of a pending call": lambda p: _with(_first_pending(p), failed_tool),
    "tool_result of an answered call": lambda p: _with(p.answered, ok),
    "tool_result of a cancelled call": lambda p: _with(p.cancelled, ok),
    "tool_result of an unknown call": lambda p: ok("c99"),
    "tool_timeout of a pending call": lambda p: _with(_first_pending(p), ToolTimedOut),
    "tool_timeout of an answered call": lambda p: _with(p.answered, ToolTimedOut),
    "tool_timeout of a cancelled call": lambda p: _with(p.cancelled, ToolTimedOut),
    "tool_timeout of an unknown call": lambda p: ToolTimedOut("c99"),
    "turn_deadline of the last turn": lambda p: TurnDeadlineReached("t1") if p.events else None,
    "turn_deadline of another turn": lambda p: TurnDeadlineReached("t9"),
    "cancel": lambda p: CancelRequested("m9"),
    "approval allow_once of a pending call": lambda p: _with(
        _first_pending(p), lambda c: decide(c, "allow_once")
    ),
    "approval allow_tool of a pending call": lambda p: _with(
        _first_pending(p), lambda c: decide(c, "allow_tool")
    ),
    "approval reject of a pending call": lambda p: _with(
        _first_pending(p), lambda c: decide(c, "reject", "not that file")
    ),
    "approval reject ending the turn": lambda p: _with(
        _first_pending(p), lambda c: decide(c, "reject", end_turn=True)
    ),
    "approval of an answered call": lambda p: _with(p.answered, lambda c: decide(c, "allow_once")),
    "approval of a cancelled call": lambda p: _with(p.cancelled, lambda c: decide(c, "reject")),
    "approval of an unknown call": lambda p: decide("c99", "allow_once"),
    "tool_result of a call awaiting approval": lambda p: _with(_first_awaiting(p), ok),
    "set_approval read-only": lambda p: ApprovalModeSet("read-only", "m8"),
    "set_approval ask": lambda p: ApprovalModeSet("ask", "m8"),
    "files_reverted": lambda p: FilesRevertedByUser("t1", ("src/a.py",), "m6"),
}

REJECTION_CODES: dict[str, ErrorCode] = {
    "user_message": ErrorCode.BUSY,
    "user_message over the size limit": ErrorCode.TOO_LARGE,
    "tool_result of an answered call": ErrorCode.DUPLICATE_RESULT,
    "tool_result of a cancelled call": ErrorCode.LATE_RESULT,
    "tool_result of an unknown call": ErrorCode.UNKNOWN_CALL_ID,
    "cancel": ErrorCode.NOTHING_TO_CANCEL,
    "approval of an answered call": ErrorCode.DUPLICATE_RESULT,
    "approval of a cancelled call": ErrorCode.LATE_RESULT,
    "approval of an unknown call": ErrorCode.UNKNOWN_CALL_ID,
    "tool_result of a call awaiting approval": ErrorCode.APPROVAL_PENDING,
    "set_approval ask": ErrorCode.INVALID_FRAME,
    "files_reverted": ErrorCode.BUSY,
}
"""The code of each refused variant; LLM events and timers not listed are `illegal_event`."""


@dataclass(frozen=True)
class Move:
    state: SessionState
    commands: tuple[str, ...]


TURN_STARTS = Move(STREAMING, ("StartLlmRequest", "state"))
STREAMING_MOVES = {
    "llm_delta of the last request": Move(STREAMING, ("agent_delta",)),
    "llm_tool_calls of the last request": Move(STREAMING, ()),
    "llm_end of the last request": Move(DONE, ("agent_message", "state")),
    "llm_failed of the last request": Move(ERROR, ("error:llm_unavailable", "state")),
    "cancel": Move(IDLE, ("AbortLlmRequest", "state")),
    "turn_deadline of the last turn": Move(DONE, ("AbortLlmRequest", "agent_message", "state")),
}

ALLOWED = ("ClearToolTimer", "approval_decision", "tool_call", "StartToolTimer")
QUEUED = Move(AWAITING_TOOL, ("user_message_queued",))
MODE_CHANGED = ("approval_mode",)
APPROVAL_MOVES = {
    "approval allow_once of a pending call": Move(AWAITING_TOOL, ALLOWED),
    "approval allow_tool of a pending call": Move(AWAITING_TOOL, ALLOWED),
    "approval reject ending the turn": Move(
        DONE, ("ClearToolTimer", "approval_decision", "agent_message", "state")
    ),
    "user_message": QUEUED,
    "tool_timeout of a pending call": Move(AWAITING_TOOL, ("error:timeout",)),
    "cancel": Move(IDLE, ("ClearToolTimer", "state")),
    "turn_deadline of the last turn": Move(DONE, ("ClearToolTimer", "agent_message", "state")),
}
LAST_CALL_MOVES = {
    "approval reject of a pending call": Move(
        STREAMING, ("ClearToolTimer", "approval_decision", "StartLlmRequest", "state")
    ),
    "tool_timeout of a pending call": Move(
        STREAMING, ("error:timeout", "StartLlmRequest", "state")
    ),
}
TWO_PENDING_MOVES = {
    "approval reject of a pending call": Move(
        AWAITING_TOOL, ("ClearToolTimer", "approval_decision")
    ),
    "approval reject ending the turn": Move(
        DONE,
        ("ClearToolTimer", "ClearToolTimer", "approval_decision", "agent_message", "state"),
    ),
    "cancel": Move(IDLE, ("ClearToolTimer", "ClearToolTimer", "state")),
    "turn_deadline of the last turn": Move(
        DONE, ("ClearToolTimer", "ClearToolTimer", "agent_message", "state")
    ),
}
READ_ONLY_MOVES = {
    **LAST_CALL_MOVES,
    "approval reject ending the turn": APPROVAL_MOVES["approval reject ending the turn"],
    "user_message": QUEUED,
    "cancel": APPROVAL_MOVES["cancel"],
    "turn_deadline of the last turn": APPROVAL_MOVES["turn_deadline of the last turn"],
}
RUNNING_WRITE_MOVES = {
    "user_message": QUEUED,
    "tool_result of a pending call": Move(
        STREAMING, ("ClearToolTimer", "StartLlmRequest", "state")
    ),
    "failed tool_result of a pending call": Move(
        STREAMING, ("ClearToolTimer", "error:not_found", "StartLlmRequest", "state")
    ),
    "tool_timeout of a pending call": LAST_CALL_MOVES["tool_timeout of a pending call"],
    "cancel": APPROVAL_MOVES["cancel"],
    "turn_deadline of the last turn": APPROVAL_MOVES["turn_deadline of the last turn"],
}


def _approval_path_moves() -> dict[tuple[str, str], Move]:
    one, two, read_only, running = (
        "a write waits for approval",
        "a write waits for approval, a read is running",
        "a write waits for approval in a session made read-only",
        "a write allowed and running",
    )
    return {
        **{(one, v): m for v, m in {**APPROVAL_MOVES, **LAST_CALL_MOVES}.items()},
        **{(two, v): m for v, m in {**APPROVAL_MOVES, **TWO_PENDING_MOVES}.items()},
        **{(read_only, v): m for v, m in READ_ONLY_MOVES.items()},
        **{(running, v): m for v, m in RUNNING_WRITE_MOVES.items()},
        **{
            ("steering, first step", v): m
            for v, m in {
                **STREAMING_MOVES,
                "user_message": Move(STREAMING, QUEUED.commands),
            }.items()
        },
    }


LEGAL_MOVES: dict[tuple[str, str], Move] = {
    **{(p.name, "user_message"): TURN_STARTS for p in PATHS if p.state not in IN_TURN},
    **{(p.name, "set_approval read-only"): Move(p.state, MODE_CHANGED) for p in PATHS},
    **{
        (p.name, "set_approval ask"): Move(p.state, MODE_CHANGED)
        for p in PATHS
        if "approvals" in p.config.features
    },
    **{
        (p.name, "files_reverted"): Move(p.state, ("files_reverted",))
        for p in PATHS
        if p.state not in IN_TURN
    },
    **_approval_path_moves(),
    **{("first step", v): move for v, move in STREAMING_MOVES.items()},
    **{("step after tool results", v): move for v, move in STREAMING_MOVES.items()},
    ("two calls pending", "tool_result of a pending call"): Move(
        AWAITING_TOOL, ("ClearToolTimer",)
    ),
    ("two calls pending", "failed tool_result of a pending call"): Move(
        AWAITING_TOOL, ("ClearToolTimer", "error:not_found")
    ),
    ("two calls pending", "tool_timeout of a pending call"): Move(
        AWAITING_TOOL, ("error:timeout",)
    ),
    ("two calls pending", "cancel"): Move(IDLE, ("ClearToolTimer", "ClearToolTimer", "state")),
    ("one call pending", "tool_result of a pending call"): Move(
        STREAMING, ("ClearToolTimer", "StartLlmRequest", "state")
    ),
    ("one call pending", "failed tool_result of a pending call"): Move(
        STREAMING, ("ClearToolTimer", "error:not_found", "StartLlmRequest", "state")
    ),
    ("one call pending", "tool_timeout of a pending call"): Move(
        STREAMING, ("error:timeout", "StartLlmRequest", "state")
    ),
    ("one call pending", "cancel"): Move(IDLE, ("ClearToolTimer", "state")),
    ("two calls pending", "turn_deadline of the last turn"): Move(
        DONE, ("ClearToolTimer", "ClearToolTimer", "agent_message", "state")
    ),
    ("one call pending", "turn_deadline of the last turn"): Move(
        DONE, ("ClearToolTimer", "agent_message", "state")
    ),
}
"""Every legal (path, variant) pair and what it does; every other pair is refused."""


def reach(path: Path) -> SessionCore:
    """A core driven along the path; every event of it must be accepted."""
    core = SessionCore(SESSION, path.config)
    requests = []
    for event in path.events:
        commands = core.handle(event)
        assert not any(isinstance(c, RejectEvent) for c in commands), (event, commands)
        requests += [c.request_id for c in commands if isinstance(c, StartLlmRequest)]
    assert (core.state, core.pending_call_ids) == (path.state, path.pending)
    assert tuple(requests) == path.requests
    return core


def _cases() -> list[Any]:
    cases = []
    for path in PATHS:
        for variant, make in VARIANTS.items():
            event = make(path)
            if event is not None:
                cases.append(
                    pytest.param(path, variant, event, id=f"{path.state}/{path.name}/{variant}")
                )
    return cases


CASES = _cases()


def expected_rejection(path: Path, variant: str) -> ErrorCode:
    steering = "steering" in path.config.features
    if variant.startswith("user_message") and path.state in IN_TURN and not steering:
        return ErrorCode.BUSY
    awaiting = _first_pending(path) in path.awaiting
    if variant.startswith("approval") and variant.endswith(("pending call", "the turn")):
        return ErrorCode.READ_ONLY if awaiting else ErrorCode.DUPLICATE_RESULT
    if variant.endswith("of a pending call") and awaiting:
        return ErrorCode.APPROVAL_PENDING
    return REJECTION_CODES.get(variant, ErrorCode.ILLEGAL_EVENT)


def probes(core: SessionCore, count: int) -> Iterator[Event]:
    """Events that move the session on, each chosen from its observable state only.

    Tool steps repeat one call (hidden stuck counts show), turns end with text (hidden
    text shows in `agent_message`), and the step cap of `LIMITS` is within reach.
    """
    tool_step: list[Callable[[str], Event]] = [lambda r: tool_calls(r, read("a")), end]
    script: list[Callable[[str], Event]] = [
        lambda r: LlmTextDelta(r, "text "),
        *tool_step * 3,
        lambda r: LlmTextDelta(r, "more"),
        lambda r: end(r, "stop"),
    ]
    streamed = 0
    for step in range(count):
        request = core.current_request_id
        if core.calls_awaiting_approval:
            yield decide(core.calls_awaiting_approval[-1], "allow_once")
        elif core.state == AWAITING_TOOL:
            yield ok(core.pending_call_ids[-1], f"answer {step}")
        elif core.state == STREAMING and request is not None:
            yield script[streamed % len(script)](request)
            streamed += 1
        else:
            yield user(f"probe {step}")


def assert_behaves_like(core: SessionCore, twin: SessionCore) -> None:
    """Both cores answer the same events alike: also their hidden state is the same."""
    for event in probes(core, 40):
        assert core.handle(event) == twin.handle(event), event
        assert observe(core) == observe(twin)
    for event in [ok(f"c{n}") for n in range(1, 12)]:
        assert core.handle(event) == twin.handle(event), event


@pytest.mark.parametrize(("path", "variant", "event"), CASES)
def test_core_decides_every_event_in_every_state(path: Path, variant: str, event: Event) -> None:
    core = reach(path)
    before = observe(core)

    commands = core.handle(event)

    move = LEGAL_MOVES.get((path.name, variant))
    if move is None:
        rejection = only_rejection(commands)
        assert rejection.code == expected_rejection(path, variant)
        assert (rejection.event_type, rejection.state) == (event.trigger, path.state.value)
        assert rejection.message.startswith(event.trigger)
        assert f"(state {path.state.value})" in rejection.message
        assert rejection.message_id == getattr(event, "message_id", None)
        assert rejection.call_id == getattr(event, "call_id", None)
        assert observe(core) == before
        assert_behaves_like(core, reach(path))
    else:
        assert (core.state, tuple(shapes(commands))) == (move.state, move.commands)
        numbered = emitted(commands)
        assert [e.seq for e in numbered] == list(range(before.last_seq + 1, core.last_seq + 1))
        if move.state != path.state:
            assert commands[-1] == EmitEvent(
                StateChanged(
                    session_id=SESSION, seq=core.last_seq, state=move.state, previous=path.state
                )
            )
    assert_openai_conversation(core.messages, step_open=core.state == AWAITING_TOOL)


def test_core_table_cases_cover_every_state_and_event_type() -> None:
    covered = {(case.values[0].state, case.values[2].trigger) for case in CASES}
    assert covered == {(state, e.trigger) for state in STATES for e in EVENT_TYPES}


def test_core_table_cases_exercise_every_listed_legal_move() -> None:
    exercised = {(case.values[0].name, case.values[1]) for case in CASES}
    assert set(LEGAL_MOVES) <= exercised


def _sources(row: dict[str, Any]) -> list[SessionState]:
    source = row["source"]
    return list(source) if isinstance(source, list | tuple) else [source]


def test_table_decides_every_state_and_trigger_with_an_unconditional_last_row() -> None:
    triggers = {e.trigger for e in EVENT_TYPES}
    assert {row["trigger"] for row in TRANSITIONS} == triggers
    for state in STATES:
        for trigger in triggers:
            rows = [r for r in TRANSITIONS if r["trigger"] == trigger and state in _sources(r)]
            guarded = [bool(r.get("conditions") or r.get("unless")) for r in rows]
            assert guarded and guarded[-1] is False, f"{trigger} in {state} can fall through"
            assert guarded.count(False) == 1, f"{trigger} in {state} has unreachable rows"


def test_table_names_only_states_and_callbacks_the_core_has() -> None:
    for row in TRANSITIONS:
        assert set(_sources(row)) <= set(STATES) and row["dest"] in (None, *STATES)
        for key in ("conditions", "unless", "before", "after"):
            names = row.get(key) or []
            for name in [names] if isinstance(names, str) else names:
                assert callable(getattr(SessionCore, name, None)), name


# ---- behaviour: helpers -----------------------------------------------------------------


def new_core(config: CoreConfig = LIMITS) -> SessionCore:
    return SessionCore(SESSION, config)


def respond_with_calls(core: SessionCore, *calls: ModelToolCall) -> list[Command]:
    """The current request answers with these calls and ends."""
    request = core.current_request_id
    assert request is not None
    return core.handle(tool_calls(request, *calls)) + core.handle(end(request))


def respond_with_text(core: SessionCore, text: str) -> list[Command]:
    request = core.current_request_id
    assert request is not None
    return core.handle(LlmTextDelta(request, text)) + core.handle(end(request, "stop"))


def answer_all(core: SessionCore) -> list[Command]:
    commands: list[Command] = []
    for call_id in core.pending_call_ids:
        commands += core.handle(ok(call_id, f"content of {call_id}"))
    return commands


def requests_of(commands: list[Command]) -> list[StartLlmRequest]:
    return [c for c in commands if isinstance(c, StartLlmRequest)]


def errors_of(commands: list[Command]) -> list[Error]:
    return [e for e in emitted(commands) if isinstance(e, Error)]


def tool_calls_of(commands: list[Command]) -> list[ToolCall]:
    return [e for e in emitted(commands) if isinstance(e, ToolCall)]


def tool_messages(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


# ---- behaviour: cancel ------------------------------------------------------------------


def test_core_aborts_request_and_keeps_partial_text_when_cancelled_while_streaming() -> None:
    core = new_core()
    core.handle(user())
    core.handle(LlmTextDelta("t1.1", "I will start by"))

    commands = core.handle(CancelRequested("m2"))

    assert commands == [
        AbortLlmRequest("t1.1"),
        EmitEvent(StateChanged(session_id=SESSION, seq=3, state=IDLE, previous=STREAMING)),
    ]
    assert (core.state, core.turn_id, core.current_request_id) == (IDLE, None, None)
    assert core.messages[-1] == {"role": "assistant", "content": "I will start by"}
    assert_openai_conversation(core.messages)


def test_core_rejects_events_of_cancelled_request_when_they_arrive_later() -> None:
    core = new_core()
    core.handle(user())
    core.handle(CancelRequested())
    core.handle(user("Something else"))
    before = observe(core)

    for late in (
        LlmTextDelta("t1.1", "late"),
        tool_calls("t1.1", read("a")),
        end("t1.1"),
        llm_failure("t1.1"),
    ):
        assert only_rejection(core.handle(late)).code == ErrorCode.ILLEGAL_EVENT
    assert observe(core) == before
    assert core.current_request_id == "t2.1"
    assert_openai_conversation(core.messages)


def test_core_clears_timers_and_answers_calls_as_cancelled_when_cancelled_awaiting_tool() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"), read("b"), read("c"))
    core.handle(ok("c2"))

    commands = core.handle(CancelRequested())

    assert commands == [
        ClearToolTimer("c1"),
        ClearToolTimer("c3"),
        EmitEvent(StateChanged(session_id=SESSION, seq=6, state=IDLE, previous=AWAITING_TOOL)),
    ]
    answers = tool_messages(core.messages)
    assert json.loads(answers["c1"])["error"]["code"] == "cancelled"
    assert json.loads(answers["c2"]) == {"content": "file text"}
    assert json.loads(answers["c3"])["error"]["code"] == "cancelled"
    assert_openai_conversation(core.messages)


def test_core_rejects_result_as_late_result_and_never_shows_it_to_model_after_cancel() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"))
    core.handle(CancelRequested())

    rejection = only_rejection(core.handle(ok("c1", "LATE CONTENT")))
    assert (rejection.code, rejection.call_id, rejection.state) == (
        ErrorCode.LATE_RESULT,
        "c1",
        "idle",
    )
    assert only_rejection(core.handle(ToolTimedOut("c1"))).code == ErrorCode.ILLEGAL_EVENT

    (request,) = requests_of(core.handle(user("Go on")))
    assert "LATE CONTENT" not in json.dumps(request.messages)
    assert_request_conversation(request.messages)


# ---- behaviour: busy --------------------------------------------------------------------


@pytest.mark.parametrize("calls", [(), (read("a"),)], ids=["streaming", "awaiting_tool"])
def test_core_refuses_user_message_as_busy_echoing_its_id_when_turn_runs(
    calls: tuple[ModelToolCall, ...],
) -> None:
    core = new_core()
    core.handle(user())
    if calls:
        respond_with_calls(core, *calls)
    before = observe(core)

    rejection = only_rejection(core.handle(user("Me too", "m42")))

    assert (rejection.code, rejection.message_id) == (ErrorCode.BUSY, "m42")
    assert observe(core) == before
    answer_all(core)
    finished = respond_with_text(core, "Done.")
    assert emitted(finished)[-2] == AgentMessage.model_validate(
        {
            "session_id": SESSION,
            "seq": core.last_seq - 1,
            "turn_id": "t1",
            "content": "Done.",
            "finish_reason": "stop",
            "usage": {
                "prompt_tokens": 10 * (1 + len(calls)),
                "completion_tokens": 5 + 5 * len(calls),
            },
        }
    )
    assert "Me too" not in json.dumps(core.messages)
    assert_openai_conversation(core.messages)


# ---- behaviour: parallel tool calls -----------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations(["c1", "c2", "c3"])))
def test_core_gives_model_results_in_call_order_when_parallel_calls_are_answered_in_any_order(
    order: tuple[str, ...],
) -> None:
    core = new_core()
    core.handle(user())

    dispatched = respond_with_calls(core, read("a"), call("git_diff", {}), read("b"))

    assert shapes(dispatched) == [
        "tool_call",
        "tool_call",
        "tool_call",
        "StartToolTimer",
        "StartToolTimer",
        "StartToolTimer",
        "state",
    ]
    assert [(c.call_id, c.tool) for c in tool_calls_of(dispatched)] == [
        ("c1", "read_file"),
        ("c2", "git.diff"),
        ("c3", "read_file"),
    ]
    assert [c.call_id for c in dispatched if isinstance(c, StartToolTimer)] == ["c1", "c2", "c3"]
    for index, call_id in enumerate(order):
        commands = core.handle(ok(call_id, f"result of {call_id}"))
        is_last = index == len(order) - 1
        assert bool(requests_of(commands)) is is_last
        assert core.state == (STREAMING if is_last else AWAITING_TOOL)
    (request,) = requests_of(commands)
    assert [(m["role"], m.get("tool_call_id")) for m in request.messages[-4:]] == [
        ("assistant", None),
        ("tool", "c1"),
        ("tool", "c2"),
        ("tool", "c3"),
    ]
    assert [json.loads(m["content"])["content"] for m in request.messages[-3:]] == [
        "result of c1",
        "result of c2",
        "result of c3",
    ]
    assert_request_conversation(request.messages)


def test_core_rejects_duplicate_result_without_change_when_call_already_answered() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"), read("b"))
    core.handle(ok("c1", "first answer"))
    before = observe(core)

    rejection = only_rejection(core.handle(ok("c1", "second answer")))

    assert (rejection.code, rejection.call_id) == (ErrorCode.DUPLICATE_RESULT, "c1")
    assert observe(core) == before
    (request,) = requests_of(core.handle(ok("c2")))
    assert "second answer" not in json.dumps(request.messages)
    assert only_rejection(core.handle(ok("c2"))).code == ErrorCode.DUPLICATE_RESULT
    assert_request_conversation(request.messages)


def test_core_rejects_unknown_call_id_without_change_when_no_sent_call_has_it() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"), call("delete_everything", {}))
    before = observe(core)

    for call_id in ("c9", "c2", "model-read_file"):
        rejection = only_rejection(core.handle(ok(call_id)))
        assert (rejection.code, rejection.call_id) == (ErrorCode.UNKNOWN_CALL_ID, call_id)
    assert observe(core) == before
    assert_openai_conversation(core.messages, step_open=True)


# ---- behaviour: tool timeout ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "seconds"), [(CoreConfig(), 120.0), (CoreConfig(tool_timeout_s=7.5), 7.5)]
)
def test_core_starts_tool_timer_with_configured_seconds_when_call_is_sent(
    config: CoreConfig, seconds: float
) -> None:
    core = new_core(config)
    core.handle(user())

    commands = respond_with_calls(core, read("a"))

    assert StartToolTimer("c1", seconds) in commands
    assert_openai_conversation(core.messages, step_open=True)


def test_core_gives_model_synthetic_error_and_reports_ide_timeout_when_tool_times_out() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"), read("b"))
    core.handle(ok("c2"))

    commands = core.handle(ToolTimedOut("c1"))

    (error,) = errors_of(commands)
    assert (error.code, error.source, error.call_id, error.fatal) == (
        ErrorCode.TIMEOUT,
        ErrorSource.IDE,
        "c1",
        False,
    )
    (request,) = requests_of(commands)
    answer = json.loads(tool_messages(list(request.messages))["c1"])
    assert answer["error"]["code"] == "timeout"
    assert core.state == STREAMING
    late = only_rejection(core.handle(ok("c1", "REAL BUT LATE")))
    assert (late.code, late.call_id) == (ErrorCode.LATE_RESULT, "c1")
    respond_with_text(core, "The read timed out.")
    assert "REAL BUT LATE" not in json.dumps(core.messages)
    assert_openai_conversation(core.messages)


# ---- behaviour: limits ------------------------------------------------------------------


def test_core_ends_turn_with_max_steps_after_25_model_calls_by_default() -> None:
    core = new_core(CoreConfig())
    commands = core.handle(user())
    for step in range(25):
        commands += respond_with_calls(core, read(f"file{step}.py"))
        commands += answer_all(core)

    assert len(requests_of(commands)) == 25
    assert core.state == ERROR
    assert [(e.code, e.source) for e in errors_of(commands)] == [
        (ErrorCode.MAX_STEPS, ErrorSource.AGENT)
    ]
    assert commands[-1] == EmitEvent(
        StateChanged(session_id=SESSION, seq=core.last_seq, state=ERROR, previous=AWAITING_TOOL)
    )
    assert_openai_conversation(core.messages)


def test_core_counts_broken_calls_toward_the_configured_step_cap() -> None:
    core = new_core(replace(LIMITS, max_steps=3))
    commands = core.handle(user())
    for step in range(3):
        commands += respond_with_calls(core, call("read_file", {"file": f"f{step}"}))

    assert len(requests_of(commands)) == 3
    assert not tool_calls_of(commands)
    assert [e.code for e in errors_of(commands)] == [ErrorCode.INVALID_TOOL_CALL] * 3 + [
        ErrorCode.MAX_STEPS
    ]
    assert core.state == ERROR
    assert_openai_conversation(core.messages)


def test_core_starts_new_turn_with_history_intact_when_user_writes_after_max_steps() -> None:
    core = new_core(replace(LIMITS, max_steps=1))
    core.handle(user("First task"))
    respond_with_calls(core, read("a"))
    answer_all(core)
    history = list(core.messages)

    commands = core.handle(user("Continue"))

    (request,) = requests_of(commands)
    assert (request.request_id, core.turn_id, core.state) == ("t2.1", "t2", STREAMING)
    assert list(request.messages) == [*history, {"role": "user", "content": "Continue"}]
    assert_request_conversation(request.messages)


def test_core_ends_turn_as_stuck_when_same_call_repeats_three_times_in_a_row() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, call("read_file", '{"path": "a"}'))
    answer_all(core)
    respond_with_calls(core, call("read_file", '{ "path" : "a" }'))
    answer_all(core)

    commands = respond_with_calls(core, call("read_file", {"path": "a"}))

    assert not tool_calls_of(commands)
    assert [(e.code, e.source) for e in errors_of(commands)] == [
        (ErrorCode.STUCK, ErrorSource.AGENT)
    ]
    assert core.state == ERROR
    assert json.loads(tool_messages(core.messages)["c3"])["error"]["code"] == "stuck"
    assert_openai_conversation(core.messages)


def test_core_ends_turn_as_stuck_when_one_response_repeats_a_call_three_times() -> None:
    core = new_core()
    core.handle(user())

    commands = respond_with_calls(core, read("a"), read("a"), read("a"))

    assert shapes(commands) == ["error:stuck", "state"]
    assert_openai_conversation(core.messages)


def test_core_goes_on_when_repeated_calls_differ_or_another_call_breaks_the_run() -> None:
    core = new_core(CoreConfig())
    core.handle(user())
    for calls in (
        [read("a")],
        [read("a")],
        [read("b")],
        [read("a")],
        [read("a")],
        [call("git_diff", {})],
    ):
        respond_with_calls(core, *calls)
        answer_all(core)
        assert core.state == STREAMING


# ---- behaviour: broken tool calls -------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "hint"),
    [
        (call("read_file", '{"path": "a"'), "not valid JSON"),
        (call("read_file", {"file": "a"}), "do not fit its schema"),
        (call("write_file", '["a"]'), "must be a JSON object"),
        (call("delete_file", {"path": "a"}), "Unknown tool"),
        (call("git.diff", {}), "Unknown tool"),
    ],
    ids=["bad JSON", "schema mismatch", "not an object", "unknown tool", "IDE name"],
)
def test_core_never_sends_broken_call_to_ide_and_gives_model_the_error(
    broken: ModelToolCall, hint: str
) -> None:
    core = new_core()
    core.handle(user())

    commands = respond_with_calls(core, broken)

    assert not tool_calls_of(commands)
    (error,) = errors_of(commands)
    assert (error.code, error.source, error.call_id) == (
        ErrorCode.INVALID_TOOL_CALL,
        ErrorSource.LLM,
        "c1",
    )
    (request,) = requests_of(commands)
    assert (request.request_id, core.state) == ("t1.2", STREAMING)
    answer = json.loads(tool_messages(list(request.messages))["c1"])["error"]
    assert answer["code"] == "invalid_tool_call" and hint in answer["message"]
    if broken.name in ("read_file", "write_file"):
        assert "Schema: " in answer["message"] and '"required"' in answer["message"]
    assert_request_conversation(request.messages)


def test_core_sends_valid_calls_and_answers_broken_ones_in_call_order_when_mixed() -> None:
    core = new_core()
    core.handle(user())

    commands = respond_with_calls(core, call("nope", {}), read("a"), call("read_file", "{"))

    assert shapes(commands) == [
        "error:invalid_tool_call",
        "error:invalid_tool_call",
        "tool_call",
        "StartToolTimer",
        "state",
    ]
    assert [e.call_id for e in errors_of(commands)] == ["c1", "c3"]
    assert core.pending_call_ids == ("c2",)
    (request,) = requests_of(core.handle(ok("c2")))
    assert [m.get("tool_call_id") for m in request.messages[-3:]] == ["c1", "c2", "c3"]
    assert_request_conversation(request.messages)


# ---- behaviour: model failures ----------------------------------------------------------


def test_core_reports_llm_error_and_moves_to_error_when_model_fails_before_streaming() -> None:
    core = new_core()
    core.handle(user())

    commands = core.handle(LlmFailed("t1.1", ErrorCode.LLM_RATE_LIMITED, "429 slow down"))

    assert commands == [
        EmitEvent(
            Error(
                session_id=SESSION,
                seq=2,
                code=ErrorCode.LLM_RATE_LIMITED,
                message="429 slow down",
                source=ErrorSource.LLM,
            )
        ),
        EmitEvent(StateChanged(session_id=SESSION, seq=3, state=ERROR, previous=STREAMING)),
    ]
    assert core.messages[-1] == {"role": "user", "content": "Fix the bug"}
    assert_openai_conversation(core.messages)


def test_core_keeps_streamed_text_and_continues_conversation_when_model_fails_mid_stream() -> None:
    core = new_core()
    core.handle(user())
    respond_with_calls(core, read("a"))
    answer_all(core)
    core.handle(LlmTextDelta("t1.2", "The file says"))

    commands = core.handle(llm_failure("t1.2"))

    assert shapes(commands) == ["error:llm_unavailable", "state"]
    assert errors_of(commands)[0].source == ErrorSource.LLM
    assert core.messages[-1] == {"role": "assistant", "content": "The file says"}
    (request,) = requests_of(core.handle(user("Please continue")))
    assert request.messages[-2:] == (
        {"role": "assistant", "content": "The file says"},
        {"role": "user", "content": "Please continue"},
    )
    assert (core.turn_id, core.state) == ("t2", STREAMING)
    assert_request_conversation(request.messages)


def test_core_makes_agent_message_of_every_delta_of_the_turn_when_it_finishes() -> None:
    core = new_core()
    deltas = emitted(core.handle(user()))
    deltas += emitted(core.handle(LlmTextDelta("t1.1", "Reading. ")))
    respond_with_calls(core, read("a"))
    answer_all(core)
    deltas += emitted(core.handle(LlmTextDelta("t1.2", "")))
    finished = emitted(respond_with_text(core, "Done."))

    texts = [e.text for e in deltas + finished if e.type == "agent_delta"]
    (message,) = [e for e in finished if isinstance(e, AgentMessage)]
    assert "".join(texts) == message.content == "Reading. Done."
    assert core.state == DONE
    assert_openai_conversation(core.messages)


def test_core_clips_tool_output_to_its_limit_when_result_is_large() -> None:
    core = new_core(replace(LIMITS, max_tool_output_chars=50))
    core.handle(user())
    respond_with_calls(core, read("a"))

    (request,) = requests_of(core.handle(ok("c1", "y" * 500)))

    content = tool_messages(list(request.messages))["c1"]
    assert content.startswith('{"content": "yyy') and "[truncated: " in content
    assert len(content) < 120
    assert_request_conversation(request.messages)

"""The session core with the user in control: approval modes and decisions, remembered rules,
steering and reverts, each ending with a conversation the OpenAI API accepts."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from orchestrator.commands import Command, StartLlmRequest, StartToolTimer
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
    UserMessageReceived,
)
from tests.support.core_views import emitted, only_rejection, shapes
from tests.support.openai_conversation import (
    assert_openai_conversation,
    assert_request_conversation,
)
from wire import (
    ApprovalRequest,
    ErrorCode,
    SessionState,
    ToolCall,
    written_paths,
)

SESSION = "s_approvals"
ASK = CoreConfig(approval="ask", features=("approvals", "steering"), tool_timeout_s=30)


def call(name: str, **arguments: Any) -> ModelToolCall:
    return ModelToolCall(id=f"model-{name}", name=name, arguments=json.dumps(arguments))


def respond(core: SessionCore, *calls: ModelToolCall, text: str = "") -> list[Command]:
    request = core.current_request_id
    assert request is not None
    out = core.handle(LlmTextDelta(request, text)) if text else []
    if calls:
        out += core.handle(LlmToolCallsCompleted(request, calls))
    return out + core.handle(LlmStreamEnded(request, "tool_calls" if calls else "stop"))


def feed(core: SessionCore, *events: Event) -> list[Command]:
    out: list[Command] = []
    for event in events:
        out += core.handle(event)
    return out


def started(config: CoreConfig = ASK, message: str = "Rename login") -> SessionCore:
    core = SessionCore(SESSION, config)
    core.handle(UserMessageReceived(message))
    return core


def requests_of(commands: list[Command]) -> list[StartLlmRequest]:
    return [c for c in commands if isinstance(c, StartLlmRequest)]


def calls_of(commands: list[Command]) -> list[ToolCall]:
    return [e for e in emitted(commands) if isinstance(e, ToolCall)]


def tool_answers(core: SessionCore) -> dict[str, Any]:
    return {
        m["tool_call_id"]: json.loads(m["content"]) for m in core.messages if m["role"] == "tool"
    }


WRITE_A = call("write_file", path="a.py", content="x = 1\n")
WRITE_B = call("write_file", path="b.py", content="y = 2\n")
PATCH_AB = call(
    "apply_patch",
    diff="--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n--- a/b.py\n+++ b/b.py\n@@ -1 +1 @@\n-y\n+z\n",
)


def test_core_asks_before_a_write_and_sends_it_with_a_fresh_timer_once_allowed() -> None:
    core = started()
    dispatched = respond(core, WRITE_A, call("read_file", path="a.py"))

    request, read = emitted(dispatched)[:2]
    assert isinstance(request, ApprovalRequest) and isinstance(read, ToolCall)
    assert (request.call_id, request.tool, request.turn_id) == ("c1", "write_file", "t1")
    assert read.approval is None and core.calls_awaiting_approval == ("c1",)
    assert not requests_of(core.handle(ToolResultReceived("c2", True, {"content": "x"})))

    allowed = core.handle(ApprovalAnswered("c1", "allow_once"))

    assert shapes(allowed) == ["ClearToolTimer", "approval_decision", "tool_call", "StartToolTimer"]
    assert allowed[-1] == StartToolTimer("c1", 30)
    assert calls_of(allowed)[0].approval == "user"
    (step,) = requests_of(core.handle(ToolResultReceived("c1", True, {"bytes_written": 6})))
    assert_request_conversation(step.messages)


def test_core_gives_the_model_the_rejection_with_its_reason_and_goes_on() -> None:
    core = started()
    respond(core, WRITE_A)

    out = core.handle(ApprovalAnswered("c1", "reject", "Keep a.py as it is."))

    assert shapes(out) == ["ClearToolTimer", "approval_decision", "StartLlmRequest", "state"]
    assert tool_answers(core)["c1"] == {
        "error": {
            "code": "rejected_by_user",
            "message": "The user declined this change. Keep a.py as it is.",
        }
    }
    assert core.state == SessionState.STREAMING
    assert only_rejection(core.handle(ApprovalAnswered("c1", "reject"))).code == (
        ErrorCode.DUPLICATE_RESULT
    )
    assert_request_conversation(requests_of(out)[0].messages)


def test_core_ends_the_turn_on_a_rejection_with_end_turn_and_stops_the_other_calls() -> None:
    core = started()
    respond(core, WRITE_A, call("read_file", path="a.py"), text="Renaming. ")

    out = core.handle(ApprovalAnswered("c1", "reject", None, True))

    assert shapes(out) == [
        "ClearToolTimer",
        "ClearToolTimer",
        "approval_decision",
        "agent_message",
        "state",
    ]
    answer = emitted(out)[-2]
    assert (answer.finish_reason, answer.content) == ("rejected", "Renaming. ")  # type: ignore[union-attr]
    assert tool_answers(core)["c2"]["error"]["code"] == "stopped"
    assert only_rejection(core.handle(ToolResultReceived("c2", True, {}))).code == (
        ErrorCode.LATE_RESULT
    )
    assert_openai_conversation(core.messages)


def test_core_remembers_allow_tool_for_every_later_call_of_that_tool() -> None:
    core = started()
    respond(core, WRITE_A)
    core.handle(ApprovalAnswered("c1", "allow_tool"))
    core.handle(ToolResultReceived("c1", True, {"bytes_written": 6}))

    out = respond(core, WRITE_B, PATCH_AB)

    assert [c.approval for c in calls_of(out)] == ["session"]
    assert [e.call_id for e in emitted(out) if isinstance(e, ApprovalRequest)] == ["c3"]


def test_core_remembers_allow_path_for_that_tool_on_the_paths_a_patch_names() -> None:
    core = started()
    respond(core, PATCH_AB)
    core.handle(ApprovalAnswered("c1", "allow_path"))
    core.handle(ToolResultReceived("c1", True, {"files": ["a.py", "b.py"]}))

    patch_a = call("apply_patch", diff="--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-y\n+w\n")
    patch_ac = call("apply_patch", diff="--- a/a.py\n+++ b/a.py\n--- a/c.py\n+++ b/c.py\n")
    out = respond(core, patch_a, patch_ac, WRITE_A)

    assert [(c.call_id, c.approval) for c in calls_of(out)] == [("c2", "session")]
    assert core.calls_awaiting_approval == ("c3", "c4")


def test_written_paths_reads_a_path_argument_or_every_file_header_of_a_patch() -> None:
    begin_patch = (
        "*** Begin Patch\n*** Update File: src/x.py\n@@\n-a\n+b\n*** Add File: y.md\n+hi\n"
    )
    assert written_paths({"path": "a.py", "content": ""}) == ("a.py",)
    assert written_paths(json.loads(PATCH_AB.arguments)) == ("a.py", "b.py")
    assert written_paths({"diff": begin_patch}) == ("src/x.py", "y.md")
    assert written_paths({"diff": "--- /dev/null\n+++ b/new.txt\n"}) == ("new.txt",)


def test_core_times_out_a_call_waiting_for_approval_like_any_call() -> None:
    core = started()
    respond(core, WRITE_A)

    out = core.handle(ToolTimedOut("c1"))

    assert shapes(out) == ["error:timeout", "StartLlmRequest", "state"]
    assert tool_answers(core)["c1"]["error"]["code"] == "timeout"
    late = only_rejection(core.handle(ApprovalAnswered("c1", "allow_once")))
    assert late.code == ErrorCode.LATE_RESULT


def test_core_refuses_a_result_before_the_user_allowed_the_call() -> None:
    core = started()
    respond(core, WRITE_A)

    rejection = only_rejection(core.handle(ToolResultReceived("c1", True, {}, message_id="r1")))

    assert (rejection.code, rejection.message_id) == (ErrorCode.APPROVAL_PENDING, "r1")


def test_core_in_read_only_offers_no_write_tool_says_why_and_allows_no_waiting_call() -> None:
    core = started()
    respond(core, WRITE_A, call("read_file", path="a.py"))
    assert shapes(core.handle(ApprovalModeSet("read-only"))) == ["approval_mode"]

    refused = only_rejection(core.handle(ApprovalAnswered("c1", "allow_once")))
    core.handle(ApprovalAnswered("c1", "reject"))
    (step,) = requests_of(core.handle(ToolResultReceived("c2", True, {"content": "x"})))

    assert refused.code == ErrorCode.READ_ONLY
    names = {tool["function"]["name"] for tool in step.tools}
    assert names == {"read_file", "git_diff"}
    assert "read-only" in step.messages[0]["content"]
    assert "write_file, apply_patch" in step.messages[0]["content"]
    assert core.messages[0]["content"] == ASK.system_prompt
    out = respond(core, WRITE_B)
    assert not calls_of(out) and shapes(out)[0] == "error:invalid_tool_call"


def test_a_write_call_still_streaming_when_the_session_turns_read_only_is_never_sent() -> None:
    core = started(replace(ASK, approval="auto-edit"))
    request = core.current_request_id
    assert request is not None
    core.handle(LlmToolCallsCompleted(request, (call("git_diff"), WRITE_A)))
    core.handle(ApprovalModeSet("read-only"))
    out = core.handle(LlmStreamEnded(request, "tool_calls"))

    assert [c.tool for c in calls_of(out)] == ["git.diff"]
    assert shapes(out)[0] == "error:invalid_tool_call"


def test_core_in_auto_edit_never_asks_and_says_why_a_write_runs() -> None:
    core = started(replace(ASK, approval="auto-edit"))

    out = respond(core, WRITE_A)

    assert [c.approval for c in calls_of(out)] == ["mode"]
    assert not [e for e in emitted(out) if isinstance(e, ApprovalRequest)]


def test_core_of_an_ide_without_approvals_sends_write_calls_as_before() -> None:
    core = started(CoreConfig())

    out = respond(core, WRITE_A)

    assert [c.approval for c in calls_of(out)] == [None]
    assert only_rejection(core.handle(ApprovalModeSet("ask"))).code == ErrorCode.INVALID_FRAME
    assert only_rejection(core.handle(UserMessageReceived("and b", "m2"))).code == ErrorCode.BUSY


def test_core_delivers_a_queued_message_after_the_steps_tool_results() -> None:
    core = started()
    respond(core, call("read_file", path="a.py"))

    queued = core.handle(UserMessageReceived("Also look at b.py"))
    (step,) = requests_of(core.handle(ToolResultReceived("c1", True, {"content": "x"})))

    assert shapes(queued) == ["user_message_queued"]
    assert [m["role"] for m in step.messages[-3:]] == ["assistant", "tool", "user"]
    assert step.messages[-1]["content"] == "Also look at b.py"
    assert_request_conversation(step.messages)


def test_core_goes_on_when_the_model_answers_while_a_message_is_queued() -> None:
    core = started()
    core.handle(UserMessageReceived("In French, please"))

    out = respond(core, text="Renamed.")

    assert shapes(out) == ["agent_delta", "StartLlmRequest"]
    (step,) = requests_of(out)
    assert [m["content"] for m in step.messages[-2:]] == ["Renamed.", "In French, please"]
    finished = respond(core, text=" Renommé.")
    assert emitted(finished)[-2].content == "Renamed. Renommé."  # type: ignore[union-attr]
    assert_openai_conversation(core.messages)


def test_core_drops_the_queue_on_cancel_and_keeps_it_when_the_turn_fails() -> None:
    cancelled = started()
    cancelled.handle(UserMessageReceived("never mind that"))
    cancelled.handle(CancelRequested())
    assert "never mind that" not in json.dumps(cancelled.messages)

    failed = started()
    failed.handle(UserMessageReceived("and tests too"))
    failed.handle(LlmFailed("t1.1", "llm_unavailable", "down"))
    assert failed.messages[-1] == {"role": "user", "content": "and tests too"}
    assert_openai_conversation(failed.messages)


def test_core_notes_a_revert_for_the_model_between_turns() -> None:
    core = started()
    respond(core, text="Done.")

    out = core.handle(FilesRevertedByUser("t1", ("a.py", "b.py"), "u1"))
    (step,) = requests_of(core.handle(UserMessageReceived("Try again")))

    assert shapes(out) == ["files_reverted"]
    note = step.messages[-2]
    assert note["role"] == "user" and "a.py, b.py" in note["content"]
    assert "request number 1" in note["content"]
    busy = only_rejection(core.handle(FilesRevertedByUser("t2", ("a.py",), "u2")))
    assert (busy.code, busy.message_id) == (ErrorCode.BUSY, "u2")


def test_core_replays_modes_decisions_and_rules_exactly() -> None:
    events: list[Event] = [
        UserMessageReceived("go"),
        LlmToolCallsCompleted("t1.1", (WRITE_A,)),
        LlmStreamEnded("t1.1", "tool_calls"),
        UserMessageReceived("queued"),
        ApprovalAnswered("c1", "allow_tool"),
        ToolResultReceived("c1", True, {"bytes_written": 6}),
        LlmToolCallsCompleted("t1.2", (WRITE_B,)),
        LlmStreamEnded("t1.2", "tool_calls"),
        ToolResultReceived("c2", True, {"bytes_written": 6}),
        LlmTextDelta("t1.3", "ok"),
        LlmStreamEnded("t1.3", "stop"),
        ApprovalModeSet("read-only"),
        FilesRevertedByUser("t1", ("a.py",)),
    ]
    first = replay_inputs(SESSION, ASK, events)
    rebuilt = SessionCore(SESSION, ASK)
    second = feed(rebuilt, *events)

    assert first == second
    assert rebuilt.approval_mode == "read-only"
    assert [c.approval for c in calls_of(first)] == ["user", "session"]
    assert [e.call_id for e in emitted(first) if isinstance(e, ApprovalRequest)] == ["c1"]
    assert rebuilt.messages[-1]["content"].startswith("[The user reverted these files")

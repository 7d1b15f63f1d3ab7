"""The bridge's pure parts: the patch adapter, the tools an editor can run, the event mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from acp import RequestError, image_block, resource_link_block, text_block
from acp.schema import ClientCapabilities, FileSystemCapabilities

from acp_agent import offered_tools, plan_patch, prompt_text
from acp_agent.events import EventMapper
from acp_agent.modes import ApprovalMode, EditDecision, EditPolicy
from ide_client.patch import PatchError
from wire import (
    AgentDelta,
    AgentMessage,
    ApprovalDecision,
    ApprovalModeChanged,
    ApprovalRequest,
    Error,
    ErrorSource,
    NumberedEvent,
    SessionState,
    StateChanged,
    ToolCall,
)
from wire import Usage as WireUsage

FILES = {"a.txt": "one\ntwo\n"}
MODIFY = "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n"
CREATE = "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+hello\n"


def read(path: str) -> str | None:
    return FILES.get(path)


def test_plan_patch_gives_old_and_new_text_of_each_file() -> None:
    [modified, created] = plan_patch(MODIFY + CREATE, read)
    assert (modified.path, modified.old_text, modified.new_text) == (
        "a.txt",
        FILES["a.txt"],
        "one\nTWO\n",
    )
    assert (created.path, created.old_text, created.new_text) == ("new.txt", None, "hello\n")


def test_plan_patch_applies_a_second_patch_of_one_file_to_the_first_ones_result() -> None:
    again = "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n-one\n+ONE\n TWO\n"
    [edit] = plan_patch(MODIFY + again, read)
    assert (edit.old_text, edit.new_text) == (FILES["a.txt"], "ONE\nTWO\n")


@pytest.mark.parametrize(
    ("diff", "problem"),
    [
        ("--- a/a.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-one\n-two\n", "deleting or renaming"),
        (
            "diff --git a/a.txt b/b.txt\nrename from a.txt\nrename to b.txt\n",
            "deleting or renaming",
        ),
        ("--- a/gone.txt\n+++ b/gone.txt\n@@ -1 +1 @@\n-x\n+y\n", "gone.txt: no such file"),
        ("--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+x\n", "a.txt: already exists"),
        ("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-nine\n+ten\n", "the file has 'one' where"),
    ],
)
def test_plan_patch_refuses_what_the_editor_cannot_do_or_what_does_not_fit(
    diff: str, problem: str
) -> None:
    with pytest.raises(PatchError, match=problem):
        plan_patch(diff, read)


def test_tools_offered_follow_the_editors_capabilities() -> None:
    full = ClientCapabilities(
        fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True
    )
    assert offered_tools(full) == ("read_file", "write_file", "git.diff", "apply_patch")
    no_terminal = ClientCapabilities(fs=full.fs, terminal=False)
    assert offered_tools(no_terminal) == ("read_file", "write_file", "apply_patch")
    read_only = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True), terminal=False)
    assert offered_tools(read_only) == ("read_file",)
    assert offered_tools(None) == ()


def test_edit_policy_asks_allows_or_refuses_by_mode() -> None:
    policy = EditPolicy()
    assert policy.decide() is EditDecision.ASK
    policy.always_allowed = True
    assert policy.decide() is EditDecision.ALLOW
    policy.mode = ApprovalMode.READ_ONLY
    assert policy.decide() is EditDecision.REFUSE
    assert [mode.id for mode in policy.mode_state().available_modes] == [
        "ask",
        "auto-edit",
        "read-only",
    ]


def test_prompt_text_takes_text_and_links_and_refuses_images() -> None:
    link = resource_link_block("auth.js", "file:///w/src/auth.js")
    assert prompt_text([text_block("Look at "), link]) == "Look at [auth.js](file:///w/src/auth.js)"
    with pytest.raises(RequestError):
        prompt_text([image_block("aGk=", "image/png")])
    with pytest.raises(RequestError):
        prompt_text([text_block("  ")])


def _events() -> list[NumberedEvent]:
    sid = "s1"
    usage = WireUsage(prompt_tokens=10, completion_tokens=5)
    return [
        StateChanged(
            session_id=sid, seq=1, state=SessionState.STREAMING, previous=SessionState.IDLE
        ),
        ToolCall(
            session_id=sid, seq=2, call_id="c1", tool="read_file", arguments={"path": "a.txt"}
        ),
        StateChanged(
            session_id=sid, seq=3, state=SessionState.AWAITING_TOOL, previous=SessionState.STREAMING
        ),
        StateChanged(
            session_id=sid, seq=4, state=SessionState.STREAMING, previous=SessionState.AWAITING_TOOL
        ),
        AgentDelta(session_id=sid, seq=5, turn_id="t1", text="Done."),
        AgentMessage(
            session_id=sid, seq=6, turn_id="t1", content="Done.", finish_reason="stop", usage=usage
        ),
        StateChanged(
            session_id=sid, seq=7, state=SessionState.DONE, previous=SessionState.STREAMING
        ),
    ]


def test_replayed_turn_shows_the_prompt_the_call_completed_and_the_text() -> None:
    mapper = EventMapper(Path("/w"), prompts={1: "Read a.txt"}, replaying=True)
    updates = [update for event in _events() for update in mapper.updates(event)]
    kinds = [(u.session_update, getattr(u, "status", None)) for u in updates]
    assert kinds == [
        ("user_message_chunk", None),
        ("tool_call", "pending"),
        ("tool_call_update", "completed"),
        ("agent_message_chunk", None),
    ]
    assert updates[1].locations[0].path == "/w/a.txt"
    assert mapper.stop_reason(cancel_requested=False) == "end_turn"
    assert mapper.outcome.usage is not None and mapper.outcome.usage.prompt_tokens == 10


def test_a_call_waiting_for_approval_is_shown_once_and_a_rejection_fails_it() -> None:
    sid = "s1"
    mapper = EventMapper(Path("/w"), replaying=True)
    arguments = {"path": "a.txt", "content": "x"}
    events: list[NumberedEvent] = [
        ApprovalRequest(
            session_id=sid,
            seq=1,
            turn_id="t1",
            call_id="c1",
            tool="write_file",
            arguments=arguments,
        ),
        ApprovalDecision(session_id=sid, seq=2, turn_id="t1", call_id="c1", decision="allow_once"),
        ToolCall(
            session_id=sid,
            seq=3,
            call_id="c1",
            tool="write_file",
            arguments=arguments,
            approval="user",
        ),
        ApprovalRequest(
            session_id=sid,
            seq=4,
            turn_id="t1",
            call_id="c2",
            tool="write_file",
            arguments=arguments,
        ),
        ApprovalDecision(
            session_id=sid, seq=5, turn_id="t1", call_id="c2", decision="reject", message="no"
        ),
        ApprovalModeChanged(session_id=sid, seq=6, mode="read-only"),
    ]
    updates = [(event.seq, update) for event in events for update in mapper.updates(event)]
    shown = [(seq, u.session_update, getattr(u, "status", None)) for seq, u in updates]
    assert shown == [
        (1, "tool_call", "pending"),
        (4, "tool_call", "pending"),
        (5, "tool_call_update", "failed"),
        (6, "current_mode_update", None),
    ]
    assert updates[2][1].content[0].content.text == "rejected: no"


def test_a_call_settled_by_the_runner_is_not_settled_again_by_the_events() -> None:
    mapper = EventMapper(Path("/w"))
    for event in _events()[:3]:
        mapper.updates(event)
    assert mapper.settle("c1") is True
    assert mapper.updates(_events()[3]) == []
    assert mapper.settle("c1") is False


@pytest.mark.parametrize(
    ("last", "code", "finish", "reason"),
    [
        (SessionState.IDLE, None, None, "cancelled"),
        (SessionState.ERROR, "max_steps", None, "max_turn_requests"),
        (SessionState.ERROR, "llm_timeout", None, "end_turn"),
        (SessionState.DONE, None, "length", "max_tokens"),
        (SessionState.DONE, None, "content_filter", "refusal"),
    ],
)
def test_stop_reason_follows_how_the_turn_ended(
    last: SessionState, code: str | None, finish: str | None, reason: str
) -> None:
    mapper = EventMapper(Path("/w"))
    mapper.updates(_events()[0])
    if code:
        error = Error(code=code, message="m", source=ErrorSource.AGENT, session_id="s1", seq=2)
        [shown] = mapper.updates(error)
        assert shown.session_update == "agent_message_chunk" and code in shown.content.text
    if finish:
        mapper.outcome.finish_reason = finish
    mapper.updates(
        StateChanged(session_id="s1", seq=3, state=last, previous=SessionState.STREAMING)
    )
    assert mapper.stop_reason(cancel_requested=False) == reason

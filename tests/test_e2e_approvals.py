"""The user in control, over the real services: approval modes, the approval round trip,
steering and the server's half of undo, driven by a raw protocol client through the gateway,
with a scripted OpenAI-compatible upstream behind the real llm-proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from agent_service.stack import ServiceStack, StackConfig
from tests.support.fake_upstream import FakeUpstream, Step, text_stream, tool_call_stream
from tests.support.openai_conversation import assert_request_conversation
from tests.support.stack import running_stack
from tests.support.wsclient import AT_REST, Frame, ProtocolClient, numbered

APPROVALS = {"features": ["approvals"]}
STEERING = {"features": ["approvals", "steering"]}
WRITE_A = ("write_file", json.dumps({"path": "a.txt", "content": "hello\n"}))
WRITE_B = ("write_file", json.dumps({"path": "b.txt", "content": "bye\n"}))
PATCH_A = ("apply_patch", json.dumps({"diff": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-x\n+y\n"}))
READ_A = ("read_file", json.dumps({"path": "a.txt"}))
Decide = Callable[[Frame], Awaitable[Frame | None]]


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    with running_stack(
        tmp_path_factory.mktemp("approvals"), llm_base_url=upstream.base_url, model="fake-model"
    ) as config:
        yield config


def calls_then_answers(*steps: tuple[str, str]) -> Callable[[dict[str, Any]], list[Step]]:
    """A model that makes one call per step, in this order, then answers in text: the step is
    told by the tool results since the turn's message (a user message that follows no tool
    result; a steering message follows the step's results)."""

    def script(request: dict[str, Any]) -> list[Step]:
        messages = request["messages"]
        turn_start = max(
            i
            for i, m in enumerate(messages)
            if m["role"] == "user" and messages[i - 1]["role"] != "tool"
        )
        step = sum(1 for m in messages[turn_start:] if m["role"] == "tool")
        if step < len(steps):
            return tool_call_stream([steps[step]])
        return text_stream("Done.")

    return script


def tool_output(frame: Frame) -> Frame:
    """The IDE's successful answer to a tool call, as its output schema says."""
    outputs = {
        "read_file": {"content": "x\n"},
        "write_file": {"bytes_written": len(frame["arguments"].get("content", ""))},
        "apply_patch": {"files": ["a.txt"]},
        "git.diff": {"diff": ""},
    }
    return {
        "type": "tool_result",
        "call_id": frame["call_id"],
        "ok": True,
        "output": outputs[frame["tool"]],
    }


def decision(frame: Frame, choice: str, **extra: Any) -> Frame:
    return {"type": "approval", "call_id": frame["call_id"], "decision": choice, **extra}


def always(choice: str, **extra: Any) -> Decide:
    async def decide(frame: Frame) -> Frame:
        return decision(frame, choice, **extra)

    return decide


async def turn(
    client: ProtocolClient,
    content: str,
    decide: Decide | None = None,
    on_tool_call: Callable[[Frame], Awaitable[None]] | None = None,
) -> list[Frame]:
    """Send a message; decide on approval requests, run tool calls; frames until at rest."""
    start = len(client.received)
    await client.send({"type": "user_message", "id": "m1", "content": content})
    return await until_rest(client, start, decide, on_tool_call)


async def until_rest(
    client: ProtocolClient,
    start: int,
    decide: Decide | None = None,
    on_tool_call: Callable[[Frame], Awaitable[None]] | None = None,
) -> list[Frame]:
    started = False
    while True:
        frame = await client.receive()
        if frame["type"] == "approval_request" and decide is not None:
            answer = await decide(frame)
            if answer is not None:
                await client.send(answer)
        elif frame["type"] == "tool_call":
            if on_tool_call is not None:
                await on_tool_call(frame)
            await client.send(tool_output(frame))
        elif frame["type"] == "state":
            started = started or frame["state"] == "streaming"
            if started and frame["state"] in AT_REST:
                return client.received[start:]


def of_type(frames: list[Frame], kind: str) -> list[Frame]:
    return [frame for frame in frames if frame["type"] == kind]


def offered(request: dict[str, Any]) -> set[str]:
    return {tool["function"]["name"] for tool in request.get("tools") or ()}


async def opened(stack: StackConfig, **hello: Any) -> tuple[ProtocolClient, Frame]:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.send({"type": "hello", "protocol": 1, **hello})
    reply = await client.receive()
    assert reply["type"] == "session", reply
    return client, reply


async def test_ask_mode_sends_no_write_call_until_the_user_allows_it(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, reply = await opened(stack, capabilities=APPROVALS)
    assert (reply["approval"], reply["features"], reply["protocol_minor"]) == (
        "ask",
        ["approvals"],
        2,
    )
    seen_before_allow: list[Frame] = []

    async def allow_after_looking(frame: Frame) -> Frame:
        seen_before_allow.extend(client.received)
        assert len(upstream.requests) == 1
        return decision(frame, "allow_once")

    frames = await turn(client, "write a.txt", allow_after_looking)
    await client.close()

    assert not of_type(seen_before_allow, "tool_call")
    (request,) = of_type(frames, "approval_request")
    assert (request["tool"], request["arguments"]) == ("write_file", json.loads(WRITE_A[1]))
    (decided,) = of_type(frames, "approval_decision")
    (call,) = of_type(frames, "tool_call")
    assert decided["decision"] == "allow_once" and decided["call_id"] == call["call_id"]
    assert call["approval"] == "user" and call["seq"] == decided["seq"] + 1
    assert of_type(frames, "agent_message")[0]["content"] == "Done."
    assert json.loads(upstream.requests[-1].json["messages"][-1]["content"]) == {"bytes_written": 6}


async def test_a_rejection_with_a_reason_reaches_the_model_as_the_calls_result(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    frames = await turn(client, "write a.txt", always("reject", message="Use b.txt instead."))
    await client.close()

    assert not of_type(frames, "tool_call")
    assert of_type(frames, "approval_decision")[0]["message"] == "Use b.txt instead."
    messages = upstream.requests[-1].json["messages"]
    assert_request_conversation(messages)
    assert json.loads(messages[-1]["content"]) == {
        "error": {
            "code": "rejected_by_user",
            "message": "The user declined this change. Use b.txt instead.",
        }
    }
    assert of_type(frames, "state")[-1]["state"] == "done"


async def test_a_rejection_that_ends_the_turn_leaves_it_done_without_another_request(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    frames = await turn(client, "write a.txt", always("reject", end_turn=True))
    requests = len(upstream.requests)
    upstream.reset(lambda request: text_stream("Understood."))
    after = await turn(client, "never mind")
    await client.close()

    (answer,) = of_type(frames, "agent_message")
    assert answer["finish_reason"] == "rejected"
    assert requests == 1 and of_type(after, "agent_message")[0]["content"] == "Understood."
    assert_request_conversation(upstream.requests[-1].json["messages"])


async def test_allow_tool_stops_further_prompts_for_that_tool_only(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A, WRITE_B, PATCH_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    frames = await turn(client, "write both, then patch", always("allow_tool"))
    await client.close()

    asked = [frame["call_id"] for frame in of_type(frames, "approval_request")]
    calls = {frame["call_id"]: frame for frame in of_type(frames, "tool_call")}
    assert len(asked) == 2 and len(calls) == 3
    first, second, patch = calls.values()
    assert (first["approval"], second["approval"], patch["approval"]) == (
        "user",
        "session",
        "user",
    )
    assert asked == [first["call_id"], patch["call_id"]]


async def test_allow_path_covers_that_file_and_no_other(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    rewrite_a = ("write_file", json.dumps({"path": "a.txt", "content": "again\n"}))
    upstream.reset(calls_then_answers(WRITE_A, rewrite_a, WRITE_B))
    client, _ = await opened(stack, capabilities=APPROVALS)
    frames = await turn(client, "write a twice, then b", always("allow_path"))
    await client.close()

    approvals = [frame["approval"] for frame in of_type(frames, "tool_call")]
    assert approvals == ["user", "session", "user"]
    assert len(of_type(frames, "approval_request")) == 2


@pytest.mark.parametrize(
    ("hello", "approval"),
    [({"capabilities": APPROVALS, "approval": "auto-edit"}, "mode"), ({}, None)],
    ids=["auto-edit declared", "an IDE without the feature"],
)
async def test_auto_edit_runs_write_calls_without_asking(
    stack: StackConfig, upstream: FakeUpstream, hello: Frame, approval: str | None
) -> None:
    upstream.reset(calls_then_answers(WRITE_A, READ_A))
    client, reply = await opened(stack, **hello)
    frames = await turn(client, "write a.txt")
    await client.close()

    assert reply["approval"] == "auto-edit"
    assert not of_type(frames, "approval_request")
    write, read = of_type(frames, "tool_call")
    assert write.get("approval") == approval and "approval" not in read


async def test_read_only_offers_no_write_tool_tells_the_model_why_and_never_sends_one(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, reply = await opened(stack, approval="read-only")
    frames = await turn(client, "write a.txt")
    await client.close()

    assert reply["approval"] == "read-only"
    assert not of_type(frames, "tool_call") and not of_type(frames, "approval_request")
    error = of_type(frames, "error")[0]
    assert (error["source"], error["code"]) == ("llm", "invalid_tool_call")
    for request in upstream.requests:
        assert offered(request.json) == {"read_file", "git_diff"}
        assert "read-only" in request.json["messages"][0]["content"]


async def test_set_approval_switches_modes_during_a_session(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    await client.send({"type": "set_approval", "mode": "read-only", "id": "s1"})
    changed = await client.receive()
    assert (changed["type"], changed["mode"]) == ("approval_mode", "read-only")
    await turn(client, "write a.txt")
    assert "write_file" not in offered(upstream.requests[-1].json)
    await client.send({"type": "set_approval", "mode": "auto-edit"})
    await client.receive()
    upstream.reset(calls_then_answers(WRITE_A))
    frames = await turn(client, "now write it")
    await client.close()
    assert of_type(frames, "tool_call")[0]["approval"] == "mode"


async def test_ask_without_the_approvals_feature_is_refused(stack: StackConfig) -> None:
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.send({"type": "hello", "protocol": 1, "approval": "ask", "id": "h1"})
    refused = await client.receive()
    assert (refused["type"], refused["code"], refused["id"]) == ("error", "invalid_frame", "h1")
    assert "approvals feature" in refused["message"]
    reply = await client.hello()
    await client.send({"type": "set_approval", "mode": "ask", "id": "s1"})
    refused = await client.receive()
    await client.close()
    assert reply["approval"] == "auto-edit"
    assert (refused["code"], refused["id"]) == ("invalid_frame", "s1")


async def test_a_message_sent_during_a_turn_reaches_the_model_after_the_steps_results(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(READ_A))
    client, reply = await opened(stack, capabilities=STEERING)
    assert reply["features"] == ["approvals", "steering"]

    async def steer(frame: Frame) -> None:
        await client.send({"type": "user_message", "content": "Also check b.txt."})
        queued = await client.receive_until(lambda f: f["type"] == "user_message_queued")
        assert (queued["turn_id"], queued["text"]) == ("t1", "Also check b.txt.")

    frames = await turn(client, "read a.txt", on_tool_call=steer)
    await client.close()

    assert len(upstream.requests) == 2
    messages = upstream.requests[-1].json["messages"]
    assert_request_conversation(messages)
    assert [m["role"] for m in messages[-3:]] == ["assistant", "tool", "user"]
    assert messages[-1]["content"] == "Also check b.txt."
    assert of_type(frames, "agent_message")[0]["content"] == "Done."


async def test_without_steering_a_message_during_a_turn_is_busy(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(READ_A))
    client, _ = await opened(stack, capabilities=APPROVALS)

    async def interrupt(frame: Frame) -> None:
        await client.send({"type": "user_message", "content": "and b", "id": "m2"})
        refused = await client.receive_until(lambda f: f.get("id") == "m2")
        assert refused["code"] == "busy"

    await turn(client, "read a.txt", on_tool_call=interrupt)
    await client.close()


async def test_cancel_during_a_pending_approval_leaves_the_session_usable(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    pending: list[Frame] = []

    async def cancel_instead(frame: Frame) -> None:
        pending.append(frame)
        await client.send({"type": "cancel", "id": "x1"})

    frames = await turn(client, "write a.txt", cancel_instead)
    assert of_type(frames, "state")[-1]["state"] == "idle"
    await client.send(decision(pending[0], "allow_once", id="late"))
    late = await client.receive()
    assert (late["code"], late["id"]) == ("late_result", "late")
    upstream.reset(lambda request: text_stream("Fresh start."))
    after = await turn(client, "hello again")
    await client.close()

    assert of_type(after, "agent_message")[0]["content"] == "Fresh start."
    messages = upstream.requests[-1].json["messages"]
    assert_request_conversation(messages)
    cancelled = json.loads(next(m for m in messages if m["role"] == "tool")["content"])
    assert cancelled["error"]["code"] == "cancelled"


async def test_files_reverted_adds_a_note_the_model_reads_next(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(WRITE_A))
    client, _ = await opened(stack, capabilities=APPROVALS)
    await turn(client, "write a.txt", always("allow_once"))
    await client.send({"type": "files_reverted", "turn_id": "t1", "paths": ["a.txt"], "id": "u1"})
    reverted = await client.receive()
    upstream.reset(lambda request: text_stream("Noted."))
    await turn(client, "what is in a.txt now?")
    await client.close()

    assert (reverted["type"], reverted["turn_id"], reverted["paths"]) == (
        "files_reverted",
        "t1",
        ["a.txt"],
    )
    messages = upstream.requests[-1].json["messages"]
    assert_request_conversation(messages)
    note, question = messages[-2:]
    assert note["role"] == "user" and "a.txt" in note["content"]
    assert "reverted" in note["content"] and question["content"] == "what is in a.txt now?"


async def test_files_reverted_during_a_turn_is_busy(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_then_answers(READ_A))
    client, _ = await opened(stack, capabilities=APPROVALS)

    async def revert(frame: Frame) -> None:
        await client.send({"type": "files_reverted", "turn_id": "t1", "paths": [], "id": "u1"})
        refused = await client.receive_until(lambda f: f.get("id") == "u1")
        assert refused["code"] == "busy"

    await turn(client, "read a.txt", on_tool_call=revert)
    await client.close()


# it replays the transcripts file of the one orchestrator
@pytest.mark.single_machine
async def test_rules_and_pending_approvals_survive_a_restart_and_replay_exactly(
    recorded_stack: ServiceStack, upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = recorded_stack.config
    upstream.reset(calls_then_answers(WRITE_A))
    client = await ProtocolClient.connect(config.gateway_url, config.token)
    opened_reply = await client.hello(capabilities=STEERING)
    await turn(client, "write a.txt", always("allow_tool"))
    upstream.reset(calls_then_answers(PATCH_A))
    await client.send({"type": "user_message", "content": "patch a.txt"})
    request = await client.receive_until(lambda frame: frame["type"] == "approval_request")

    assert recorded_stack.restart("orchestrator") == 0
    with pytest.raises(ConnectionClosed):
        while True:
            await client.receive(timeout=10)
    await client.close()
    last_seq = max(frame["seq"] for frame in numbered(client.received))
    again = await ProtocolClient.connect(config.gateway_url, config.token)
    resumed = await again.hello(opened_reply["session_id"], last_seq)
    assert (resumed["state"], resumed["approval"]) == ("awaiting_tool", "ask")
    offered_again = await again.receive()
    assert offered_again == request
    await again.send(decision(request, "allow_once"))
    frames = await until_rest(again, 0)
    assert of_type(frames, "tool_call")[0]["approval"] == "user"

    upstream.reset(calls_then_answers(WRITE_B))
    frames = await turn(again, "write b.txt", always("reject"))
    await again.close()
    assert not of_type(frames, "approval_request")
    assert of_type(frames, "tool_call")[0]["approval"] == "session"

    db = str(tmp_path / "t.db")
    verified = subprocess.run(
        [sys.executable, "-m", "agent_service", "replay", "--all", "--verify", "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

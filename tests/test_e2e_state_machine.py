"""The state machine's promises, seen by a protocol-only client over the real services."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent_service.stack import StackConfig
from tests.support.fake_upstream import (
    FakeUpstream,
    Step,
    paced,
    text_stream,
    tool_call_stream,
)
from tests.support.stack import running_stack
from tests.support.wsclient import ProtocolClient, numbered, state_is

TOOL_TIMEOUT_S = 1.0
MAX_STEPS = 3


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    orchestrator_args = ["--tool-timeout", str(TOOL_TIMEOUT_S), "--max-steps", str(MAX_STEPS)]
    with running_stack(
        tmp_path_factory.mktemp("state-machine"),
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={"orchestrator": orchestrator_args},
    ) as config:
        yield config


@pytest.fixture
async def client(stack: StackConfig) -> Any:
    connected = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await connected.hello()
    yield connected
    await connected.close()


def slow_text(words: int) -> list[Step]:
    return paced(text_stream(" ".join(f"w{index}" for index in range(words))), 0.1)


def last_tool_messages(upstream: FakeUpstream) -> list[dict[str, Any]]:
    messages = upstream.requests[-1].json["messages"]
    tail = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        tail.append(message)
    return list(reversed(tail))


async def test_cancel_mid_stream_closes_the_upstream_request_and_goes_idle(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: slow_text(100))
    await client.send({"type": "user_message", "content": "talk", "id": "m1"})
    await client.receive_until(lambda frame: frame["type"] == "agent_delta")
    await client.send({"type": "cancel", "id": "x1"})
    await client.receive_until(state_is("idle"))
    request = upstream.requests[-1]
    assert await asyncio.to_thread(request.disconnected.wait, 5), "upstream never saw the close"
    assert not request.finished.is_set()

    upstream.reset(lambda request: text_stream("Fresh start."))
    frames = await client.run_turn("again", message_id="m2")
    assert next(f for f in frames if f["type"] == "agent_message")["content"] == "Fresh start."
    roles = [message["role"] for message in upstream.requests[-1].json["messages"]]
    assert roles[-3:] == ["user", "assistant", "user"]


async def test_user_message_during_a_turn_is_refused_as_busy_and_the_turn_goes_on(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: slow_text(8))
    await client.send({"type": "user_message", "content": "talk", "id": "m1"})
    await client.receive_until(lambda frame: frame["type"] == "agent_delta")
    await client.send({"type": "user_message", "content": "interrupt!", "id": "m2"})
    busy = await client.receive_until(lambda frame: frame["type"] == "error")
    assert (busy["code"], busy["id"], busy["source"]) == ("busy", "m2", "protocol")
    assert "seq" not in busy
    message = await client.receive_until(lambda frame: frame["type"] == "agent_message")
    assert message["content"] == " ".join(f"w{index}" for index in range(8))
    assert len(upstream.requests) == 1


async def test_parallel_calls_answered_in_reverse_order_reach_the_model_in_call_order(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    paths = ["a.txt", "b.txt", "c.txt"]

    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("All three read.")
        return tool_call_stream([("read_file", json.dumps({"path": path})) for path in paths])

    upstream.reset(script)
    await client.send({"type": "user_message", "content": "read all"})
    await client.receive_until(state_is("awaiting_tool"))
    calls = [frame for frame in client.received if frame["type"] == "tool_call"][-3:]
    assert [call["arguments"]["path"] for call in calls] == paths
    assert len(upstream.requests) == 1
    for call in reversed(calls):
        output = {"content": f"content of {call['arguments']['path']}"}
        await client.send(
            {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": output}
        )
    await client.receive_until(state_is("done"))
    answers = last_tool_messages(upstream)
    assert [answer["tool_call_id"] for answer in answers] == [call["call_id"] for call in calls]
    assert [json.loads(answer["content"])["content"] for answer in answers] == [
        f"content of {path}" for path in paths
    ]

    await client.send(
        {"type": "tool_result", "call_id": calls[0]["call_id"], "ok": True, "id": "dup"}
    )
    duplicate = await client.receive()
    assert (duplicate["code"], duplicate["id"]) == ("duplicate_result", "dup")


async def test_tool_timeout_gives_the_model_an_error_and_ignores_the_late_result(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("The tool timed out.")
        return tool_call_stream([("read_file", '{"path": "slow.txt"}')])

    upstream.reset(script)
    await client.send({"type": "user_message", "content": "read slowly"})
    call = await client.receive_until(lambda frame: frame["type"] == "tool_call")
    timeout = await client.receive_until(lambda frame: frame["type"] == "error")
    assert (timeout["source"], timeout["code"], timeout["call_id"]) == (
        "ide",
        "timeout",
        call["call_id"],
    )
    await client.receive_until(state_is("done"))
    answer = json.loads(last_tool_messages(upstream)[0]["content"])
    assert answer["error"]["code"] == "timeout"

    await client.send(
        {"type": "tool_result", "call_id": call["call_id"], "ok": True, "output": {}, "id": "t"}
    )
    late = await client.receive()
    assert (late["code"], late["id"], late["source"]) == ("late_result", "t", "protocol")


async def test_turn_ends_with_max_steps_and_the_next_message_starts_a_new_turn(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        step = sum(1 for message in request["messages"] if message["role"] == "tool")
        return tool_call_stream([("read_file", json.dumps({"path": f"f{step}.txt"}))])

    upstream.reset(script)
    await client.send({"type": "user_message", "content": "loop"})
    steps = 0
    while True:
        frame = await client.receive()
        if frame["type"] == "tool_call":
            steps += 1
            await client.send(
                {"type": "tool_result", "call_id": frame["call_id"], "ok": True, "output": {}}
            )
        if frame["type"] == "error":
            assert (frame["code"], frame["source"]) == ("max_steps", "agent")
            break
    await client.receive_until(state_is("error"))
    assert steps == MAX_STEPS and len(upstream.requests) == MAX_STEPS

    upstream.reset(lambda request: text_stream("Stopping here."))
    frames = await client.run_turn("ok, summarise")
    assert next(f for f in frames if f["type"] == "agent_message")["content"] == "Stopping here."


async def test_malformed_tool_call_never_reaches_the_ide_and_the_model_gets_the_schema(
    client: ProtocolClient, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Sorry, fixed.")
        return tool_call_stream([("read_file", '{"path": "a.txt"')])

    upstream.reset(script)
    frames = await client.run_turn("read a.txt")
    assert not [frame for frame in frames if frame["type"] == "tool_call"]
    error = next(frame for frame in frames if frame["type"] == "error")
    assert (error["source"], error["code"]) == ("llm", "invalid_tool_call")
    answer = json.loads(last_tool_messages(upstream)[0]["content"])
    assert answer["error"]["code"] == "invalid_tool_call"
    assert '"path"' in answer["error"]["message"] and "Schema" in answer["error"]["message"]
    assert [f["state"] for f in frames if f["type"] == "state"] == ["streaming", "done"]
    seqs = [frame["seq"] for frame in numbered(frames)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

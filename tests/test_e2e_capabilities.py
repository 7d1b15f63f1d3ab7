"""`hello` capabilities over the real services: the model is offered only the tools the IDE
declared, a tool the IDE lacks is never sent to it, and the choice survives resume, replay
and an orchestrator restart."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from agent_service.stack import ServiceStack, StackConfig
from tests.support.fake_upstream import FakeUpstream, Step, text_stream, tool_call_stream
from tests.support.stack import running_stack
from tests.support.wsclient import ProtocolClient, numbered

CORE_TOOLS = ["read_file", "write_file", "git.diff", "apply_patch"]
READ_AND_DIFF = {"tools": ["git.diff", "read_file", "teleport"], "features": ["holograms"]}


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackConfig]:
    with running_stack(
        tmp_path_factory.mktemp("capabilities"), llm_base_url=upstream.base_url, model="fake-model"
    ) as config:
        yield config


def offered(upstream: FakeUpstream) -> list[str] | None:
    """The function names the last model request offered (None: no `tools` at all)."""
    tools = upstream.requests[-1].json.get("tools")
    return None if tools is None else [tool["function"]["name"] for tool in tools]


def calls_apply_patch_then_stops(request: dict[str, Any]) -> list[Step]:
    """A model that calls apply_patch whatever it was offered, then answers in text."""
    if request["messages"][-1]["role"] == "tool":
        return text_stream("I could not patch.")
    return tool_call_stream([("apply_patch", json.dumps({"diff": ""}))])


async def test_old_style_hello_gets_the_core_tools(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("Hi."))
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    reply = await client.hello()
    assert (reply["tools"], reply["features"], reply["protocol_minor"]) == (CORE_TOOLS, [], 2)
    await client.run_turn("hello")
    await client.close()
    assert offered(upstream) == ["read_file", "write_file", "git_diff", "apply_patch"]


async def test_ide_that_lacks_a_tool_is_never_asked_to_run_it(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(calls_apply_patch_then_stops)
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    reply = await client.hello(capabilities=READ_AND_DIFF)
    assert (reply["tools"], reply["features"]) == (["read_file", "git.diff"], [])
    frames = await client.run_turn("patch it")
    await client.close()

    assert not [frame for frame in frames if frame["type"] == "tool_call"]
    error = next(frame for frame in frames if frame["type"] == "error")
    assert (error["source"], error["code"]) == ("llm", "invalid_tool_call")
    assert "Unknown tool 'apply_patch'" in error["message"]
    assert offered(upstream) == ["read_file", "git_diff"]
    answer = json.loads(upstream.requests[-1].json["messages"][-1]["content"])
    assert answer["error"]["code"] == "invalid_tool_call"
    assert (
        next(f for f in frames if f["type"] == "agent_message")["content"] == "I could not patch."
    )


async def test_ide_that_declares_no_tools_gets_a_request_without_tools(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("Just talking."))
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    reply = await client.hello(capabilities={"tools": []})
    assert reply["tools"] == []
    await client.run_turn("chat only")
    await client.close()
    assert offered(upstream) is None


async def test_resume_keeps_the_tools_the_session_was_opened_with(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    upstream.reset(lambda request: text_stream("Still here."))
    first = await ProtocolClient.connect(stack.gateway_url, stack.token)
    opened = await first.hello(capabilities={"tools": ["read_file"]})
    await first.close()
    again = await ProtocolClient.connect(stack.gateway_url, stack.token)
    resumed = await again.hello(opened["session_id"], 0, capabilities={"tools": CORE_TOOLS})
    assert resumed["resumed"] is True and resumed["tools"] == ["read_file"]
    await again.run_turn("anything")
    await again.close()
    assert offered(upstream) == ["read_file"]


# it replays the transcripts file of the one orchestrator
@pytest.mark.single_machine
async def test_restart_and_replay_offer_the_tools_the_session_was_opened_with(
    recorded_stack: ServiceStack, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset(calls_apply_patch_then_stops)
    config = recorded_stack.config
    client = await ProtocolClient.connect(config.gateway_url, config.token)
    opened = await client.hello(capabilities=READ_AND_DIFF)
    await client.run_turn("patch it")

    assert recorded_stack.restart("orchestrator") == 0
    with pytest.raises(ConnectionClosed):
        while True:
            await client.receive(timeout=10)
    last_seq = max(frame["seq"] for frame in numbered(client.received))
    again = await ProtocolClient.connect(config.gateway_url, config.token)
    resumed = await again.hello(opened["session_id"], last_seq)
    assert resumed["tools"] == ["read_file", "git.diff"]
    upstream.reset(calls_apply_patch_then_stops)
    frames = await again.run_turn("patch it again")
    await again.close()
    assert not [frame for frame in frames if frame["type"] == "tool_call"]
    assert offered(upstream) == ["read_file", "git_diff"]
    await client.close()

    db = str(tmp_path / "t.db")
    verified = subprocess.run(
        [sys.executable, "-m", "agent_service", "replay", "--all", "--verify", "--db", db],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_tool_error_code_the_protocol_does_not_define_arrives_as_tool_failed(
    stack: StackConfig, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Noted.")
        return tool_call_stream([("read_file", '{"path": "a.txt"}')])

    async def fail(call: dict[str, Any]) -> dict[str, Any]:
        error = {"code": "disk_on_fire", "message": "smoke"}
        return {"type": "tool_result", "call_id": call["call_id"], "ok": False, "error": error}

    upstream.reset(script)
    client = await ProtocolClient.connect(stack.gateway_url, stack.token)
    await client.hello()
    frames = await client.run_turn("read a.txt", fail)
    await client.close()
    error = next(frame for frame in frames if frame["type"] == "error")
    assert (error["source"], error["code"]) == ("ide", "tool_failed")
    assert error["message"] == "read_file: [disk_on_fire] smoke"

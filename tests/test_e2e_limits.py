"""Limits and admission over the real services: origins, connection and session caps, tool output
size, and a drain on SIGTERM that lets a running turn finish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_service.stack import ServiceStack
from tests.support.fake_upstream import (
    FakeUpstream,
    Step,
    paced,
    text_stream,
    tool_call_stream,
)
from tests.support.protocol_schema import assert_server_frame
from tests.support.stack import started_stack
from tests.support.wsclient import ProtocolClient

ORIGIN = "https://ide.example"
GRACE_PERIOD_S = 0.3


@pytest.fixture(scope="module")
def stack(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    with started_stack(
        tmp_path_factory.mktemp("limits"),
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={
            "gateway": ["--allowed-origin", ORIGIN, "--max-connections", "3"],
            "orchestrator": [
                "--max-sessions-per-token",
                "2",
                "--max-tool-output",
                "100",
                "--grace-period",
                str(GRACE_PERIOD_S),
            ],
        },
    ) as started:
        yield started


async def sessions_of_earlier_tests_expired() -> None:
    """The token's session cap is shared by the module's tests: wait out their grace period."""
    await asyncio.sleep(GRACE_PERIOD_S + 0.7)


async def test_gateway_refuses_a_browser_origin_that_is_not_allowed(stack: ServiceStack) -> None:
    config = stack.config
    headers = {"Authorization": f"Bearer {config.token}"}
    with pytest.raises(InvalidStatus) as refused:
        await connect(config.gateway_url, additional_headers=headers, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    async with connect(config.gateway_url, additional_headers=headers, origin=ORIGIN) as allowed:
        await allowed.send(json.dumps({"type": "hello", "protocol": 1}))
        reply = json.loads(await allowed.recv())
        assert_server_frame(reply)
        assert reply["type"] == "session"


async def test_sessions_per_token_and_connections_per_gateway_are_capped(
    stack: ServiceStack,
) -> None:
    config = stack.config
    await sessions_of_earlier_tests_expired()
    clients = [await ProtocolClient.connect(config.gateway_url, config.token) for _ in range(3)]
    for client in clients[:2]:
        await client.hello()
    await clients[2].send({"type": "hello", "protocol": 1, "id": "h3"})
    refused = await clients[2].receive()
    assert (refused["code"], refused["id"], refused["source"]) == (
        "session_limit",
        "h3",
        "protocol",
    )

    fourth = await ProtocolClient.connect(config.gateway_url, config.token)
    full = await fourth.receive()
    assert full["code"] == "session_limit" and full["fatal"] is True
    with pytest.raises(ConnectionClosed) as closed:
        await fourth.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    for client in clients:
        await client.close()


async def test_tool_output_over_the_limit_reaches_the_model_cut_with_a_marker(
    stack: ServiceStack, upstream: FakeUpstream
) -> None:
    def script(request: dict[str, Any]) -> list[Step]:
        if request["messages"][-1]["role"] == "tool":
            return text_stream("Long file.")
        return tool_call_stream([("read_file", '{"path": "big.txt"}')])

    upstream.reset(script)
    await sessions_of_earlier_tests_expired()
    client = await ProtocolClient.connect(stack.config.gateway_url, stack.config.token)
    await client.hello()

    async def answer(frame: dict[str, Any]) -> dict[str, Any]:
        output = {"content": "z" * 10_000}
        return {"type": "tool_result", "call_id": frame["call_id"], "ok": True, "output": output}

    await client.run_turn("read big.txt", answer)
    await client.close()
    tool_message = upstream.requests[-1].json["messages"][-1]
    assert tool_message["role"] == "tool"
    assert len(tool_message["content"]) < 200 and "[truncated: " in tool_message["content"]


async def test_sigterm_lets_a_running_turn_finish_before_the_orchestrator_stops(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    words = [f"w{index} " for index in range(10)]
    upstream.reset(lambda request: paced(text_stream("".join(words)), 0.1))
    with started_stack(
        tmp_path,
        llm_base_url=upstream.base_url,
        model="fake-model",
        extra_args={"orchestrator": ["--drain-timeout", "20"]},
    ) as stack:
        client = await ProtocolClient.connect(stack.config.gateway_url, stack.config.token)
        await client.hello()
        await client.send({"type": "user_message", "content": "talk"})
        while (await client.receive())["type"] != "agent_delta":
            pass
        stopping = asyncio.create_task(asyncio.to_thread(stack.restart, "orchestrator"))
        message = None
        with pytest.raises(ConnectionClosed):
            while True:
                frame = await client.receive()
                if frame["type"] == "agent_message":
                    message = frame
        assert await stopping == 0
    assert message is not None and message["content"] == "".join(words)

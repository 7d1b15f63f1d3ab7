"""The reference IDE rides out a restart of the gateway or the orchestrator (real processes):
it reconnects with backoff while the service is down, resumes by last_seq, loses no event and
no message typed meanwhile."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_service.stack import ServiceStack
from ide_client.client import IdeClient
from ide_client.display import ConsoleDisplay
from ide_client.sample import create_sample_workspace
from ide_client.tools import ToolRunner
from ide_client.workspace import Workspace
from tests.support.fake_upstream import FakeUpstream, paced, text_stream
from tests.support.procs import stop_listener
from wire import AgentDelta, ServerMessage

# each test stops the one gateway or orchestrator and starts a replacement by hand
pytestmark = pytest.mark.single_machine

DOWNTIME_S = 3.0


def ide_for(
    stack: ServiceStack,
    workspace: Path,
    on_event: Callable[[ServerMessage], None] | None = None,
) -> IdeClient:
    return IdeClient(
        stack.config.gateway_url,
        stack.config.token,
        ToolRunner(Workspace(workspace)),
        display=ConsoleDisplay(io.StringIO()),
        on_event=on_event,
    )


async def bring_back(stack: ServiceStack, service: str, log: Path) -> ServiceStack:
    """Start `service` again on its port, as a new process, after the downtime."""
    await asyncio.sleep(DOWNTIME_S)
    replacement = ServiceStack(stack.config, output=log.open("ab"))
    await asyncio.to_thread(replacement.start, services=(service,))
    return replacement


def numbered_seqs(frames: list[ServerMessage]) -> list[int]:
    return [seq for frame in frames if (seq := getattr(frame, "seq", None)) is not None]


async def test_ide_resumes_mid_turn_through_a_gateway_restart(
    recorded_stack: ServiceStack, upstream: FakeUpstream, tmp_path: Path
) -> None:
    text = " ".join(f"word{index}" for index in range(60))
    upstream.reset(lambda request: paced(text_stream(text), 0.1))
    streaming = asyncio.Event()

    def on_event(frame: ServerMessage) -> None:
        if isinstance(frame, AgentDelta):
            streaming.set()

    workspace = create_sample_workspace(tmp_path / "ws")
    async with ide_for(recorded_stack, workspace, on_event=on_event) as client:
        turn_task = asyncio.create_task(client.run_turn("talk for a while"))
        await streaming.wait()
        await asyncio.to_thread(stop_listener, recorded_stack.config.gateway_port)
        gateway = await bring_back(recorded_stack, "gateway", tmp_path / "gateway2.log")
        try:
            turn = await asyncio.wait_for(turn_task, 60)
        finally:
            await client.close()
            assert gateway.stop() == {"gateway": 0}
    assert turn.ok and turn.text == text
    seqs = numbered_seqs(turn.frames)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "an event was lost or repeated"
    assert any(getattr(frame, "resumed", False) for frame in turn.frames)


async def test_a_message_typed_while_the_orchestrator_is_down_is_answered_once_it_is_back(
    recorded_stack: ServiceStack, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset(lambda request: text_stream("Answered."))
    workspace = create_sample_workspace(tmp_path / "ws")
    async with ide_for(recorded_stack, workspace) as client:
        first = await client.run_turn("hello")
        assert first.ok
        await asyncio.to_thread(stop_listener, recorded_stack.config.orchestrator_port)
        typed = asyncio.create_task(client.run_turn("typed while the orchestrator was down"))
        orchestrator = await bring_back(
            recorded_stack, "orchestrator", tmp_path / "orchestrator2.log"
        )
        try:
            turn = await asyncio.wait_for(typed, 60)
        finally:
            await client.close()
            assert orchestrator.stop() == {"orchestrator": 0}
    assert turn.ok and turn.text == "Answered."
    asked = [request.json["messages"][-1]["content"] for request in upstream.requests]
    assert asked.count("typed while the orchestrator was down") == 1

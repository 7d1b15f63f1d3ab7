"""The orchestrator's operator log: a line per turn start and end and per tool call, with
durations, from a real stack; and the log's own rules on a scripted clock."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ide_client.sample import create_sample_workspace
from orchestrator.turn_log import TurnLog
from tests.support.stack import started_stack
from tests.support.wsclient import ProtocolClient
from tests.test_e2e_pipeline import tool_answerer
from wire import AgentDelta, AgentMessage, SessionState, StateChanged, ToolCall, Usage


def _state(seq: int, state: SessionState, previous: SessionState) -> StateChanged:
    return StateChanged(session_id="s", seq=seq, state=state, previous=previous)


def test_a_turn_logs_its_tools_and_its_end_with_durations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    turns = TurnLog("s", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="orchestrator.turns")

    turns.emitted(_state(1, SessionState.STREAMING, SessionState.IDLE))
    turns.emitted(AgentDelta(session_id="s", seq=2, turn_id="t", text="hi"))
    turns.emitted(ToolCall(session_id="s", seq=3, call_id="c1", tool="read_file", arguments={}))
    turns.emitted(ToolCall(session_id="s", seq=4, call_id="c2", tool="git.diff", arguments={}))
    turns.emitted(_state(5, SessionState.AWAITING_TOOL, SessionState.STREAMING))
    now[0] += 0.25
    turns.tool_answered("c1", "ok")
    turns.tool_answered("unknown", "ok")
    usage = Usage(prompt_tokens=7, completion_tokens=3)
    message = AgentMessage(
        session_id="s", seq=6, turn_id="t", content="hi", finish_reason="stop", usage=usage
    )
    turns.emitted(message)
    now[0] += 0.75
    turns.emitted(_state(7, SessionState.IDLE, SessionState.AWAITING_TOOL))

    lines = [(record.getMessage(), record.__dict__) for record in caplog.records]
    assert [message for message, _ in lines] == [
        "turn started",
        "tool call ended",
        "tool call ended",
        "turn ended",
    ]
    assert lines[1][1]["tool"] == "read_file" and lines[1][1]["duration_ms"] == 250.0
    assert lines[2][1]["outcome"] == "cancelled" and lines[2][1]["tool"] == "git.diff"
    ended = lines[3][1]
    assert ended["duration_ms"] == 1000.0
    assert (ended["prompt_tokens"], ended["completion_tokens"]) == (7, 3)
    assert ended["state"] == "idle" and ended["model_calls"] == 1


async def test_the_orchestrator_logs_each_turn_and_tool_call(tmp_path: Path) -> None:
    workspace = create_sample_workspace(tmp_path / "ws")
    with started_stack(tmp_path) as stack:
        client = await ProtocolClient.connect(stack.config.gateway_url, stack.config.token)
        await client.hello()
        await client.run_turn("Add logging to src/auth.js", tool_answerer(workspace, []))
        await client.close()
    entries = [
        json.loads(line)
        for line in (tmp_path / "stack.log").read_text().splitlines()
        if line.startswith("{") and '"orchestrator.turns"' in line
    ]
    messages = [entry["msg"] for entry in entries]
    assert messages[0] == "turn started" and messages[-1] == "turn ended"
    tools = [entry["tool"] for entry in entries if entry["msg"] == "tool call ended"]
    assert tools == ["read_file", "apply_patch", "git.diff"]
    assert all(entry["duration_ms"] >= 0 for entry in entries if "duration_ms" in entry)
    assert entries[-1]["state"] == "done" and entries[-1]["model_calls"] == 4

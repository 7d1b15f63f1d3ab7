"""Any function of the conversation is a model behind the proxy's function backend."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llm_proxy.chunks import DONE_FRAME
from llm_proxy.function_backend import FunctionBackend, FunctionReply, TextReply, ToolCallReply

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]


def echo(messages: Sequence[Mapping[str, Any]], tools: frozenset[str]) -> FunctionReply:
    """Calls read_file when offered, else says what the user said."""
    if "read_file" in tools and messages[-1]["role"] == "user":
        return ToolCallReply("call_1", "read_file", json.dumps({"path": "a" * 100}))
    return TextReply(f"you said: {messages[-1]['content']}")


def _events(frames: list[bytes]) -> list[dict[str, Any]]:
    assert frames[-1] == DONE_FRAME
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames[:-1]]


async def test_function_backend_streams_a_text_reply_word_by_word_with_estimated_usage() -> None:
    request = {
        "model": "echo",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream_options": {"include_usage": True},
    }
    frames = [frame async for frame in FunctionBackend(echo, "echo").stream(request)]
    events = _events(frames)
    text = "".join(
        choice["delta"].get("content") or "" for event in events for choice in event["choices"]
    )
    assert text == "you said: hello there"
    assert len(events) > 4
    assert events[-1]["usage"]["estimated"] is True
    assert {event["model"] for event in events} == {"echo"}


async def test_function_backend_streams_a_tool_call_in_fragments_when_the_function_calls_one() -> (
    None
):
    request = {"model": "echo", "messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    events = _events([frame async for frame in FunctionBackend(echo, "echo").stream(request)])
    pieces = [
        call["function"].get("arguments") or ""
        for event in events
        for choice in event["choices"]
        for call in choice["delta"].get("tool_calls") or ()
    ]
    assert len([piece for piece in pieces if piece]) > 1
    assert json.loads("".join(pieces)) == {"path": "a" * 100}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_function_backend_answers_whole_and_offers_no_tools_when_tool_choice_is_none() -> (
    None
):
    request = {
        "model": "echo",
        "messages": [{"role": "user", "content": "x"}],
        "tools": TOOLS,
        "tool_choice": "none",
    }
    completion = await FunctionBackend(echo, "echo").complete(request)
    assert completion["choices"][0]["message"]["content"] == "you said: x"
    assert completion["choices"][0]["finish_reason"] == "stop"
    again = await FunctionBackend(echo, "echo").complete(request)
    assert completion["id"] == again["id"]

"""A route to an upstream that cannot stream tool calls: the proxy asks it without streaming
and streams the answer back in OpenAI's chunks; the route's context window is listed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import openai

from llm_proxy.chunks import ChunkBuilder, usage_counts
from orchestrator.context import FALLBACK_WINDOW
from orchestrator.llm_client import LlmSettings, lookup_context_window
from tests.support.fake_upstream import FakeUpstream, Raw, Reply, Step
from tests.support.proxy_process import running_proxy

CALL_ARGUMENTS = json.dumps({"path": "src/auth.js"})


def llama_cpp_like(request: dict[str, Any]) -> Iterable[Step]:
    """llama-cpp-python's function calling: a streamed request with tools fails after its 200,
    a plain one is answered whole."""
    if request.get("stream"):
        return [Raw(b": the handler failed\n\n")]
    message = {
        "role": "assistant",
        "content": "Reading it.",
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "read_file", "arguments": CALL_ARGUMENTS},
            }
        ],
    }
    body = ChunkBuilder("chatcmpl-1", 1, "gemma").completion(
        message, "tool_calls", usage_counts(40, 12)
    )
    return [Reply(200, body)]


ROUTES = """
[models.gemma]
context_window = 2048
upstreams = [{{ base_url = "{base_url}", model = "gemma", stream = false }}]
"""
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def test_a_non_streaming_route_streams_tool_calls_back_as_chunks(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.reset(llama_cpp_like)
    with running_proxy(tmp_path, routes=ROUTES.format(base_url=upstream.base_url)) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="gemma",
                messages=[{"role": "user", "content": "Read src/auth.js"}],
                tools=TOOLS,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        listed = client.models.list().data
        window = lookup_context_window(LlmSettings(base_url=proxy.base_url))
        unknown = lookup_context_window(LlmSettings(base_url=proxy.base_url, model="other"))

    assert upstream.requests[-1].json["stream"] is False
    assert "stream_options" not in upstream.requests[-1].json
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert text == "Reading it."
    assert (calls[0].id, calls[0].function.name) == ("call_7", "read_file")  # type: ignore[union-attr]
    assert "".join(d.function.arguments or "" for d in calls) == CALL_ARGUMENTS  # type: ignore[union-attr]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 40
    assert [(m.id, (m.model_extra or {}).get("context_window")) for m in listed] == [
        ("gemma", 2048)
    ]
    assert (window, unknown) == (2048, FALLBACK_WINDOW)
